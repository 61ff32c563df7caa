package io.slope.workflows.run;

import io.slope.spec.pipeline.StageResult;
import io.temporal.activity.ActivityInterface;

/**
 * Activities of the model stages, on {@link TaskQueues#GPU} and on each GPU worker's own queue. They heartbeat at
 * least every few seconds with {@code {step, lastCommittedCheckpoint}}.
 */
@ActivityInterface
public interface ModelActivities {
    ChunkResult trainChunk(ChunkRequest request);

    /**
     * One rank of a data-parallel chunk, restored from the newest committed checkpoint: rank 0 listens, reports the
     * collective's id through {@link SlopeRunWorkflow#collectiveReady} and writes the checkpoints; the other ranks join
     * with the id. Cancellation aborts the collective, so no rank waits on a peer that is gone.
     */
    ChunkResult trainChunkAsRank(RankedChunk request);

    /** The inference form and the dense export of the final model (docs/method.md, "Merge and the inference form"). */
    StageResult merge(ModelRequest request);

    /** fp32 validation losses of the sparse model, sparse+adapters, dense export and inference form, to Postgres. */
    StageResult evaluate(ModelRequest request);

    /** hf/ and slope/ exports with a manifest of checksums. */
    StageResult export(ModelRequest request);
}
