package io.slope.engine.sparse;

/**
 * N:M magnitude masks on the host: the reference every device mask kernel is checked against, bit for bit.
 * Within a group the N entries of largest |w| are kept; equal magnitudes keep the lower index (docs/method.md, "Masks").
 */
public final class NmMasks {
    private NmMasks() {}

    /**
     * Row mask of a row-major {@code rows × cols} matrix: groups of M consecutive entries along each row (the
     * forward reduction axis, d_in). Returns, per row, the column indices of the kept entries in increasing order:
     * {@code rows × (cols / M · N)} ints.
     */
    public static int[] rowKeptIndices(double[] w, int rows, int cols, NmPattern p) {
        requireDivisible(cols, p, "columns (d_in)");
        int keptPerRow = cols / p.m() * p.n();
        int[] kept = new int[rows * keptPerRow];
        int[] groupKept = new int[p.n()];
        for (int r = 0; r < rows; r++) {
            int out = r * keptPerRow;
            for (int g = 0; g < cols; g += p.m()) {
                topN(w, r * cols + g, 1, p, groupKept);
                for (int k = 0; k < p.n(); k++) {
                    kept[out++] = g + groupKept[k];
                }
            }
        }
        return kept;
    }

    /** The values of a dense {@code rows × cols} matrix at a row mask's kept positions: {@code rows × keptPerRow}. */
    public static double[] gatherKept(double[] dense, int[] rowKept, int rows, int cols) {
        int k = rowKept.length / rows;
        double[] kept = new double[rowKept.length];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < k; j++) {
                kept[r * k + j] = dense[r * cols + rowKept[r * k + j]];
            }
        }
        return kept;
    }

    /** The dense {@code rows × cols} matrix holding {@code kept} at a row mask's positions and zeros elsewhere (W^R). */
    public static double[] scatterKept(double[] kept, int[] rowKept, int rows, int cols) {
        int k = rowKept.length / rows;
        double[] dense = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < k; j++) {
                dense[r * cols + rowKept[r * k + j]] = kept[r * k + j];
            }
        }
        return dense;
    }

    /**
     * Column mask of a row-major {@code rows × cols} matrix: groups of M consecutive rows within each column (the
     * reduction axis of dX = dY·W, d_out). Returns a {@code rows × cols} byte mask, 1 = kept. Entries that are zero
     * lose every magnitude contest to nonzeros, so the support never grows beyond the matrix's own.
     */
    public static byte[] columnMask(double[] w, int rows, int cols, NmPattern p) {
        requireDivisible(rows, p, "rows (d_out)");
        byte[] mask = new byte[rows * cols];
        int[] groupKept = new int[p.n()];
        for (int g = 0; g < rows; g += p.m()) {
            for (int c = 0; c < cols; c++) {
                topN(w, g * cols + c, cols, p, groupKept);
                for (int k = 0; k < p.n(); k++) {
                    int r = g + groupKept[k];
                    if (w[r * cols + c] != 0.0) {
                        mask[r * cols + c] = 1;
                    }
                }
            }
        }
        return mask;
    }

    /**
     * Offsets (0..M-1, increasing) of the N largest |values| among w[start + k·stride], k < M; ties keep the lower
     * offset. Selection by repeated scan: M is small (≤ 32) and this is the readable reference.
     */
    static void topN(double[] w, int start, int stride, NmPattern p, int[] out) {
        long taken = 0;
        for (int k = 0; k < p.n(); k++) {
            int best = -1;
            double bestMag = -1;
            for (int j = 0; j < p.m(); j++) {
                if ((taken & (1L << j)) != 0) {
                    continue;
                }
                double mag = Math.abs(w[start + j * stride]);
                if (mag > bestMag) {
                    best = j;
                    bestMag = mag;
                }
            }
            taken |= 1L << best;
        }
        int k = 0;
        for (int j = 0; j < p.m(); j++) {
            if ((taken & (1L << j)) != 0) {
                out[k++] = j;
            }
        }
    }

    /** Refuses a dimension that N:M groups of M cannot tile, naming it. */
    public static void requireDivisible(int dim, NmPattern p, String what) {
        if (dim % p.m() != 0) {
            throw new IllegalArgumentException(what + " = " + dim + " is not divisible by M = " + p.m());
        }
    }
}
