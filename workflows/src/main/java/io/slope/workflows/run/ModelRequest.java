package io.slope.workflows.run;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.CheckpointRef;

/** A model stage after training (merge, eval, export): the run and the final checkpoint it works from. */
public record ModelRequest(String runId, ResolvedSpec spec, String datasetId, CheckpointRef finalCheckpoint) {}
