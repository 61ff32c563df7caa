package io.slope.engine.sparse;

/** N:M sparsity: at most {@code n} kept entries in every aligned group of {@code m} consecutive entries. */
public record NmPattern(int n, int m) {
    public NmPattern {
        if (m < 2 || n < 1 || n >= m) {
            throw new IllegalArgumentException("need 1 <= n < m, got " + n + ":" + m);
        }
    }

    public static NmPattern twoFour() {
        return new NmPattern(2, 4);
    }

    @Override
    public String toString() {
        return n + ":" + m;
    }
}
