package io.slope.engine.data;

import java.util.Objects;

/**
 * Training batches as a pure function of (training tokens, seed, global sample index): no state, no epochs, nothing to
 * save in a checkpoint beyond the step.
 *
 * <p>The samples of optimizer step {@code s}, micro-batch {@code m} are the global sample indices
 * {@code (s · gradAccum + m) · batchSize + row} for {@code row} in {@code [0, batchSize)}. A data-parallel rank reads a
 * contiguous slice of those rows ({@link #rankBatch}), so any number of ranks together read exactly the samples one
 * rank would. Sample {@code i} is the window of {@code seqLen + 1} tokens starting at an offset drawn uniformly from
 * every possible start, keyed by (seed, i): inputs are its first {@code seqLen} tokens, targets its last.
 */
public final class DataLoader {
    /** Names this generator stream, so other users of the same seed draw unrelated numbers. */
    private static final long DATA_WINDOW_STREAM = 0x64617461_77696e64L; // "datawind"
    private static final long GOLDEN_GAMMA = 0x9e3779b97f4a7c15L;

    private final TokenSequence train;
    private final long seed;
    private final int seqLen;
    private final int batchSize;
    private final int gradAccum;
    private final long windowStarts;

    public DataLoader(TokenSequence train, long seed, int seqLen, int batchSize, int gradAccum) {
        if (seqLen <= 0 || batchSize <= 0 || gradAccum <= 0) {
            throw new IllegalArgumentException("seqLen, batchSize and gradAccum must be positive, got " + seqLen
                    + ", " + batchSize + ", " + gradAccum);
        }
        if (train.length() < seqLen + 1L) {
            throw new IllegalArgumentException("the training split has " + train.length()
                    + " tokens, fewer than one window of seqLen + 1 = " + (seqLen + 1) + "; use more text or a"
                    + " shorter sequence length");
        }
        this.train = train;
        this.seed = seed;
        this.seqLen = seqLen;
        this.batchSize = batchSize;
        this.gradAccum = gradAccum;
        this.windowStarts = train.length() - seqLen;
    }

    /** Tokens per row: seqLen + 1 (inputs and the shifted targets share one window). */
    public int rowLength() {
        return seqLen + 1;
    }

    public long globalSampleIndex(long step, int microBatch, int row) {
        Objects.checkIndex(microBatch, gradAccum);
        Objects.checkIndex(row, batchSize);
        return Math.addExact(Math.multiplyExact(Math.addExact(Math.multiplyExact(step, gradAccum), microBatch),
                batchSize), row);
    }

    /** The whole micro-batch: {@code [batchSize][seqLen + 1]} tokens, row-major. */
    public int[] batch(long step, int microBatch) {
        return rows(step, microBatch, 0, batchSize);
    }

    /**
     * The rows of the micro-batch that data-parallel {@code rank} of {@code ranks} trains on: rows
     * {@code [rank · batchSize / ranks, (rank + 1) · batchSize / ranks)}, row-major.
     */
    public int[] rankBatch(long step, int microBatch, int rank, int ranks) {
        if (ranks <= 0 || batchSize % ranks != 0) {
            throw new IllegalArgumentException("batchSize " + batchSize + " is not divisible by " + ranks + " ranks");
        }
        Objects.checkIndex(rank, ranks);
        int rowsPerRank = batchSize / ranks;
        return rows(step, microBatch, rank * rowsPerRank, rowsPerRank);
    }

    /** The {@code seqLen + 1} tokens of one global sample. */
    public int[] sample(long globalSampleIndex) {
        return train.read(windowStart(globalSampleIndex), rowLength());
    }

    /** Where sample {@code i}'s window starts in the training split. */
    public long windowStart(long globalSampleIndex) {
        if (globalSampleIndex < 0) {
            throw new IllegalArgumentException("sample index must be >= 0, got " + globalSampleIndex);
        }
        // Modulo bias is below windowStarts / 2^64 (under 1e-9 for any corpus under 2^34 tokens): negligible.
        return Long.remainderUnsigned(random64(seed, globalSampleIndex), windowStarts);
    }

    private int[] rows(long step, int microBatch, int firstRow, int count) {
        int[] tokens = new int[count * rowLength()];
        for (int r = 0; r < count; r++) {
            long sample = globalSampleIndex(step, microBatch, firstRow + r);
            train.read(windowStart(sample), tokens, r * rowLength(), rowLength());
        }
        return tokens;
    }

    /**
     * A counter-based generator: element {@code index} of a SplitMix64 stream (Steele, Lea, Flood 2014) whose
     * starting point is derived from the seed. Being a function of (seed, index), it needs no state. The engine's
     * shared counter-based generator (io.slope.engine.rng) did not exist when this was written; switching to it
     * changes which windows a seed picks, so it must happen before any run depends on them.
     */
    static long random64(long seed, long index) {
        return splitMix64(mix64(seed ^ DATA_WINDOW_STREAM), index);
    }

    /** Output {@code index} (from 0) of SplitMix64 started from {@code state}. */
    static long splitMix64(long state, long index) {
        return mix64(state + (index + 1) * GOLDEN_GAMMA);
    }

    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
