package io.slope.catalogue;

import java.time.Instant;
import java.util.UUID;

/**
 * A row of {@code runs}: what the API shows of a run and what the workers decide on ({@code latestStep} and
 * {@code latestAttempt}: the checkpoint that won the arbitration, and the attempt that wrote it); {@code datasetId} the
 * dataset its data stage prepared, {@code options} the run options stored with it.
 */
public record RunRow(UUID id, String owner, String name, String specJson, String workflowId, RunStatus status,
        String stage, String error, int totalSteps, int stepsDone, long latestStep, String latestAttempt,
        String latestCheckpointKey, String datasetId, Instant createdAt, Instant startedAt, Instant finishedAt, Instant updatedAt,
        ChosenOptions options) {}
