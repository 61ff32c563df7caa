package io.slope.engine.train;

import io.slope.engine.data.ValidationWindows;
import io.slope.engine.model.GptModel;

/** Validation loss over the fixed windows of docs/spec.md: the mean loss over every target position of every window. */
public final class Evaluator {
    private Evaluator() {}

    public static double validationLoss(GptModel model, ValidationWindows windows, int batchSize) {
        int T = model.config().seqLen();
        if (windows.rowLength() != T + 1) {
            throw new IllegalArgumentException("validation windows of " + windows.rowLength() + " tokens for a model "
                    + "of seqLen " + T);
        }
        int n = windows.count();
        double sum = 0;
        for (int first = 0; first < n; first += batchSize) {
            int B = Math.min(batchSize, n - first);
            int[] rows = windows.windows(first, B);
            model.forward(Windows.inputs(rows, T), Windows.targets(rows, T), B);
            for (double l : model.losses(B)) {
                sum += l;
            }
        }
        return sum / ((double) n * T);
    }
}
