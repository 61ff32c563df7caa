package io.slope.workflows.run;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;

/**
 * One chunk of training: from wherever the run's model is (resident, or its newest committed checkpoint) up to
 * {@code stopStep}, or for at most {@code maxMinutes}; it ends on a committed checkpoint.
 */
public record ChunkRequest(String runId, ResolvedSpec spec, String datasetId, Stage stage, int stopStep,
        int maxMinutes) {}
