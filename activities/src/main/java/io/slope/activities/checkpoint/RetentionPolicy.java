package io.slope.activities.checkpoint;

/**
 * Which checkpoints survive garbage collection: the newest {@code keepLast}, the {@code keepBest} with the lowest
 * validation loss, every step that is a multiple of {@code majorEvery} (0: none), every pinned one, and always the
 * run's latest.
 */
public record RetentionPolicy(int keepLast, int keepBest, int majorEvery) {
    public static final RetentionPolicy DEFAULT = new RetentionPolicy(2, 1, 0);

    public RetentionPolicy {
        if (keepLast < 1) {
            throw new IllegalArgumentException("retention.keepLast must be at least 1 (got " + keepLast + ")");
        }
        if (keepBest < 0 || majorEvery < 0) {
            throw new IllegalArgumentException("retention.keepBest and retention.majorEvery must be >= 0");
        }
    }
}
