package io.slope.engine.train;

import io.slope.engine.rng.Philox;

/**
 * Random windows of an in-memory token array. The window of global sample g = (step·gradAccum + micro)·B + row starts
 * at a Philox draw keyed by (seed, g), so any step's batch can be regenerated without replaying earlier ones.
 */
public final class InMemoryBatches implements BatchSource {
    private static final long STREAM = Philox.stream("data/train-window");

    private final int[] tokens;
    private final int seqLen;
    private final int batchSize;
    private final int gradAccum;
    private final long seed;

    public InMemoryBatches(int[] tokens, int seqLen, int batchSize, int gradAccum, long seed) {
        if (tokens.length < seqLen + 2) {
            throw new IllegalArgumentException("the training split has " + tokens.length + " tokens; it needs at "
                    + "least seqLen + 2 = " + (seqLen + 2) + " (use a larger corpus or a smaller model.seqLen)");
        }
        this.tokens = tokens;
        this.seqLen = seqLen;
        this.batchSize = batchSize;
        this.gradAccum = gradAccum;
        this.seed = seed;
    }

    @Override
    public int[] batch(int step, int microBatch) {
        int w = seqLen + 1;
        int[] out = new int[batchSize * w];
        long starts = tokens.length - w + 1;
        for (int row = 0; row < batchSize; row++) {
            long sample = ((long) step * gradAccum + microBatch) * batchSize + row;
            int start = (int) Philox.uniformLong(seed, STREAM, sample, starts);
            System.arraycopy(tokens, start, out, row * w, w);
        }
        return out;
    }
}
