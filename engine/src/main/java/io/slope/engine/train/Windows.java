package io.slope.engine.train;

/** Splits B windows of seqLen+1 tokens into model inputs and targets. */
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
}
