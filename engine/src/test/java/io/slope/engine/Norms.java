package io.slope.engine;

/** The project's one definition of a relative error: normwise, ‖actual − expected‖ / ‖expected‖. */
public final class Norms {
    private Norms() {}

    /** Normwise relative error; the absolute norm of the difference when {@code expected} is all zeros. */
    public static double relativeError(double[] actual, double[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError("lengths differ: " + actual.length + " vs " + expected.length);
        }
        double num = 0;
        double den = 0;
        for (int i = 0; i < actual.length; i++) {
            num += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            den += expected[i] * expected[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }
}
