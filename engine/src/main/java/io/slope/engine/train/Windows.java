package io.slope.engine.train;

import java.util.Arrays;

/** Splits B windows of seqLen+1 tokens into model inputs and targets, or into smaller batches of windows. */
public final class Windows {
    private Windows() {}

    public static int[] inputs(int[] windows, int seqLen) {
        int B = windows.length / (seqLen + 1);
        int[] in = new int[B * seqLen];
        for (int b = 0; b < B; b++) {
            System.arraycopy(windows, b * (seqLen + 1), in, b * seqLen, seqLen);
        }
        return in;
    }

    public static int[] targets(int[] windows, int seqLen) {
        int B = windows.length / (seqLen + 1);
        int[] out = new int[B * seqLen];
        for (int b = 0; b < B; b++) {
            System.arraycopy(windows, b * (seqLen + 1) + 1, out, b * seqLen, seqLen);
        }
        return out;
    }

    /** Windows {@code first .. first + count - 1} of a batch of windows (the batch itself when that is all of it). */
    public static int[] sequences(int[] windows, int seqLen, int first, int count) {
        int from = first * (seqLen + 1);
        int to = (first + count) * (seqLen + 1);
        return from == 0 && to == windows.length ? windows : Arrays.copyOfRange(windows, from, to);
    }
}
