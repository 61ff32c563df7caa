package io.slope.workflows.run;

/**
 * How a run is driven (not what it computes): chunks of at most {@code chunkSteps} optimizer steps or
 * {@code chunkMinutes} minutes, each ending on a committed checkpoint; checkpoint retention; and
 * {@code continueAsNewAfterChunks} (0: only when Temporal suggests it) to bound the history.
 */
public record RunOptions(int chunkSteps, int chunkMinutes, int keepLastCheckpoints, int continueAsNewAfterChunks) {
    public static final RunOptions DEFAULT = new RunOptions(500, 20, 2, 0);

    public RunOptions {
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
}
