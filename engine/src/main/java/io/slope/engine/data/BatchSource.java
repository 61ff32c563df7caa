package io.slope.engine.data;

/** Training token windows: a pure function of (data, seed, step, micro-batch). */
public interface BatchSource {
    /** B windows of seqLen+1 tokens, row-major: inputs are the first seqLen, targets the last seqLen. */
    int[] batch(long step, int microBatch);
}
