package io.slope.workflows.run;

import io.slope.spec.pipeline.CheckpointRef;

/** The answer of the progress query and of the pause/resume updates. */
public record RunProgress(String runId, String stage, String status, int stepsDone, int totalSteps,
        CheckpointRef lastCheckpoint, String workerQueue, boolean paused) {}
