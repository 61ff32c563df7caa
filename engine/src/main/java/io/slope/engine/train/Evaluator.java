package io.slope.engine.train;

import io.slope.engine.model.GptModel;

/**
 * Validation loss over a fixed, documented set of windows (SLOPE.md §0): the held-out tokens cut into consecutive
 * non-overlapping windows of seqLen+1, optionally only the first {@code maxWindows}; the mean loss over every target
 * position of every window.
 */
public final class Evaluator {
    private Evaluator() {}

    public static int windowCount(int tokens, int seqLen, int maxWindows) {
        int n = tokens / (seqLen + 1);
        return maxWindows > 0 ? Math.min(n, maxWindows) : n;
    }

    public static double validationLoss(GptModel model, int[] heldOut, int maxWindows, int batchSize) {
        int T = model.config().seqLen();
        int n = windowCount(heldOut.length, T, maxWindows);
        if (n == 0) {
            throw new IllegalArgumentException("the validation split has " + heldOut.length + " tokens, fewer than "
                    + "one window of seqLen+1 = " + (T + 1) + "; raise data.valFraction or use a larger corpus");
        }
        double sum = 0;
        for (int first = 0; first < n; first += batchSize) {
            int B = Math.min(batchSize, n - first);
            int[] windows = new int[B * (T + 1)];
            System.arraycopy(heldOut, first * (T + 1), windows, 0, B * (T + 1));
            model.forward(Windows.inputs(windows, T), Windows.targets(windows, T), B);
            for (double l : model.losses(B)) {
                sum += l;
            }
        }
        return sum / ((double) n * T);
    }
}
