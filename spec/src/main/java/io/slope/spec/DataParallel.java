package io.slope.spec;

/**
 * How data-parallel ranks share an optimizer step: rank r of N takes micro-batches r, r + N, … of the step's
 * {@code training.gradAccum}, so N must divide it. The engine's {@code Trainer}, {@code slope train --ranks} and the
 * service's run options apply this one rule and give its reason in the same words; each names its own fix.
 */
public final class DataParallel {
    private DataParallel() {}

    /** Whether {@code ranks} ranks can share {@code gradAccum} micro-batches per step. */
    public static boolean fits(int ranks, int gradAccum) {
        return ranks >= 1 && gradAccum % ranks == 0;
    }

    /** Why {@code ranks} ranks do not fit {@code gradAccum}, for a count that does not. */
    public static String whyNot(int ranks, int gradAccum) {
        return ranks + " ranks cannot share training.gradAccum = " + gradAccum + " micro-batches per step (rank r "
                + "takes micro-batches r, r + " + ranks + ", …)";
    }

    /** The rank counts up to {@code maxRanks} that fit {@code gradAccum}, as "1, 2, 4". */
    public static String fittingRanks(int gradAccum, int maxRanks) {
        StringBuilder fitting = new StringBuilder();
        for (int d = 1; d <= Math.min(gradAccum, maxRanks); d++) {
            if (fits(d, gradAccum)) {
                fitting.append(fitting.isEmpty() ? "" : ", ").append(d);
            }
        }
        return fitting.toString();
    }
}
