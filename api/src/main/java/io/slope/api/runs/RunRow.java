package io.slope.api.runs;

import java.time.Instant;
import java.util.UUID;

/** A row of {@code runs}, as the API reads it; {@code options} the run options stored with it. */
public record RunRow(UUID id, String owner, String name, String specJson, String workflowId, RunStatus status,
        String stage, String error, int totalSteps, int stepsDone, long latestStep, String latestCheckpointKey,
        Instant createdAt, Instant startedAt, Instant finishedAt, Instant updatedAt, ChosenOptions options) {}
