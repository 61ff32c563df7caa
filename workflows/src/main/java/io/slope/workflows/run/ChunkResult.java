package io.slope.workflows.run;

import io.slope.spec.pipeline.CheckpointRef;

/**
 * Where a chunk ended: the steps done, the committed checkpoint there, and the queue of the worker that holds the
 * model now (where the next chunk should go).
 */
public record ChunkResult(int stepsDone, CheckpointRef checkpoint, String workerQueue) {}
