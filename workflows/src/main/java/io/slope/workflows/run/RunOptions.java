package io.slope.workflows.run;

import io.slope.spec.DataParallel;

/**
 * How a run is driven (not what it computes): chunks of at most {@code chunkSteps} optimizer steps or
 * {@code chunkMinutes} minutes, each ending on a committed checkpoint; checkpoint retention;
 * {@code continueAsNewAfterChunks} (0: only when Temporal suggests it) to bound the history; and {@code ranks}, the
 * number of data-parallel ranks (GPU workers) that train each chunk together. Inputs recorded before {@code ranks}
 * existed carry none, which reads as 0 and means one rank.
 */
public record RunOptions(int chunkSteps, int chunkMinutes, int keepLastCheckpoints, int continueAsNewAfterChunks,
        int ranks) {
    public static final RunOptions DEFAULT = new RunOptions(500, 20, 2, 0);
    /** The most data-parallel ranks a run may ask for (the catalogue's {@code runs.ranks} holds the same bound). */
    public static final int MAX_RANKS = 64;

    /** One rank. */
    public RunOptions(int chunkSteps, int chunkMinutes, int keepLastCheckpoints, int continueAsNewAfterChunks) {
        this(chunkSteps, chunkMinutes, keepLastCheckpoints, continueAsNewAfterChunks, 1);
    }

    public RunOptions {
        if (ranks == 0) {
            ranks = 1;
        }
        if (ranks < 1) {
            throw new IllegalArgumentException("ranks must be at least 1 (got " + ranks + ")");
        }
        if (chunkSteps < 1) {
            throw new IllegalArgumentException("chunkSteps must be at least 1 (got " + chunkSteps + ")");
        }
        if (chunkMinutes < 1) {
            throw new IllegalArgumentException("chunkMinutes must be at least 1 (got " + chunkMinutes + ")");
        }
        if (keepLastCheckpoints < 1) {
            throw new IllegalArgumentException("keepLastCheckpoints must be at least 1");
        }
    }

    public RunOptions withRanks(int newRanks) {
        return new RunOptions(chunkSteps, chunkMinutes, keepLastCheckpoints, continueAsNewAfterChunks, newRanks);
    }

    /**
     * These options with the ones a run chose (stored with it, or sent on submit) in place of them; null keeps
     * this one's value.
     */
    public RunOptions overriddenBy(Integer newChunkSteps, Integer newKeepLastCheckpoints, Integer newRanks) {
        return new RunOptions(newChunkSteps == null ? chunkSteps : newChunkSteps, chunkMinutes,
                newKeepLastCheckpoints == null ? keepLastCheckpoints : newKeepLastCheckpoints,
                continueAsNewAfterChunks, newRanks == null ? ranks : newRanks);
    }

    /**
     * Why {@code ranks} cannot train {@code gradAccum} micro-batches per step (each rank takes every ranks-th one),
     * or null when it can.
     */
    public static String ranksError(int ranks, int gradAccum) {
        String problem = ranksProblem(ranks, gradAccum);
        return problem == null ? null : "ranks: " + problem;
    }

    /** {@link #ranksError} without the field's name: what is wrong with {@code ranks} and how to fix it. */
    public static String ranksProblem(int ranks, int gradAccum) {
        if (ranks < 1 || ranks > MAX_RANKS) {
            return "must be 1 to " + MAX_RANKS + " (got " + ranks + ")";
        }
        if (!DataParallel.fits(ranks, gradAccum)) {
            return DataParallel.whyNot(ranks, gradAccum) + "; training.gradAccum must be a multiple of ranks: use "
                    + "ranks " + DataParallel.fittingRanks(gradAccum, MAX_RANKS) + ", or set training.gradAccum to a "
                    + "multiple of " + ranks;
        }
        return null;
    }
}
