package io.slope.engine.data;

import io.slope.engine.rng.Philox;
import java.util.Objects;

/**
 * Training batches as a pure function of (training tokens, seed, global sample index): no state, no epochs, nothing to
 * save in a checkpoint beyond the step.
 *
 * <p>The samples of optimizer step {@code s}, micro-batch {@code m} are the global sample indices
 * {@code (s · gradAccum + m) · batchSize + row} for {@code row} in {@code [0, batchSize)}. A data-parallel rank reads a
 * contiguous slice of those rows ({@link #rankBatch}), so any number of ranks together read exactly the samples one
 * rank would. Sample {@code i} is the window of {@code seqLen + 1} tokens starting at an offset drawn uniformly from
 * every possible start by the counter-based {@link Philox} generator keyed by (seed, i): inputs are its first
 * {@code seqLen} tokens, targets its last.
 */
public final class DataLoader implements BatchSource {
    /** The Philox stream of training-window starts; changing it changes every run's batches. */
    private static final long WINDOW_STREAM = Philox.stream("data/train-window");

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
    @Override
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
        return Philox.uniformLong(seed, WINDOW_STREAM, globalSampleIndex, windowStarts);
    }

    private int[] rows(long step, int microBatch, int firstRow, int count) {
        int[] tokens = new int[count * rowLength()];
        for (int r = 0; r < count; r++) {
            long sample = globalSampleIndex(step, microBatch, firstRow + r);
            train.read(windowStart(sample), tokens, r * rowLength(), rowLength());
        }
        return tokens;
    }
}
