package io.slope.cuda;

import io.slope.engine.sparse.NmPattern;

/**
 * The compact forms in which the GPU holds a sparse layer's masks (issue 14), and their conversions to and from the
 * Backend's forms (kept column indices, a byte per weight), done on the host at the rare calls that cross: checkpoint
 * save and restore.
 *
 * <p>Row mask: per kept entry, its offset within its aligned group of M along d_in, one byte ({@code dOut ×
 * keptPerRow}). The row mask keeps exactly N of every M (NmMasks.topN picks N of each group, and keptPerRow = d_in/M·N
 * leaves no room for fewer anywhere), so kept entry j of a row lies in group j / N, at column (j / N)·M + offset.
 *
 * <p>Column mask: one bit per weight, packed along d_out into 32-bit words: bit r % 32 of word (r / 32)·dIn + c is
 * entry (r, c), 1 = kept; bits of rows past d_out are 0. Words of consecutive columns are adjacent, which is how the
 * kernels walk it (a thread per column, along d_out, the column mask's group axis).
 */
final class PackedMasks {
    /** Offsets are stored in a byte. */
    static final int MAX_M = 256;

    private PackedMasks() {}

    /** Refuses a pattern whose offsets do not fit a byte. */
    static void requireSupported(NmPattern p) {
        if (p.m() > MAX_M) {
            throw new IllegalArgumentException("the CUDA backend stores row-mask offsets in a byte: M = " + p.m()
                    + " is above " + MAX_M);
        }
    }

    static long rowMaskBytes(int dOut, int dIn, NmPattern p) {
        return (long) dOut * (dIn / p.m() * p.n());
    }

    static long columnMaskWords(int dOut, int dIn) {
        return (long) ((dOut + 31) / 32) * dIn;
    }

    /**
     * Kept column indices (per row increasing, exactly N in every aligned group of M) as offsets within their groups.
     * Anything else cannot be held in this form and is refused, naming the first entry that breaks it.
     */
    static byte[] rowOffsets(int[] indices, int dOut, int dIn, NmPattern p) {
        requireSupported(p);
        int n = p.n();
        int m = p.m();
        int k = dIn / m * n;
        if (indices.length != (long) dOut * k) {
            throw new IllegalArgumentException("row mask of a " + dOut + "×" + dIn + " layer at " + p + ": "
                    + indices.length + " indices, expected " + (long) dOut * k);
        }
        byte[] offsets = new byte[indices.length];
        for (int r = 0; r < dOut; r++) {
            for (int j = 0; j < k; j++) {
                int i = r * k + j;
                int c = indices[i];
                int group = j / n;
                int offset = c - group * m;
                boolean increasing = j % n == 0 || c > indices[i - 1];
                if (offset < 0 || offset >= m || !increasing) {
                    throw new IllegalArgumentException("row mask of a " + dOut + "×" + dIn + " layer at " + p
                            + ", row " + r + ": kept entry " + j + " is column " + c + "; it must be in ["
                            + group * m + ", " + (group * m + m) + ") and increase within its group (exactly "
                            + n + " of every " + m + ")");
                }
                offsets[i] = (byte) offset;
            }
        }
        return offsets;
    }

    /** The inverse of {@link #rowOffsets}: kept column indices, per row increasing. */
    static int[] rowIndices(byte[] offsets, int dOut, int dIn, NmPattern p) {
        int k = dIn / p.m() * p.n();
        int[] indices = new int[offsets.length];
        for (int i = 0; i < offsets.length; i++) {
            indices[i] = i % k / p.n() * p.m() + (offsets[i] & 0xFF);
        }
        return indices;
    }

    /** A {@code dOut × dIn} byte mask (0 or 1; anything else is refused) as bits along d_out. */
    static int[] packColumnMask(byte[] mask, int dOut, int dIn) {
        if (mask.length != (long) dOut * dIn) {
            throw new IllegalArgumentException("column mask of a " + dOut + "×" + dIn + " layer has " + mask.length
                    + " bytes");
        }
        int[] words = new int[Math.toIntExact(columnMaskWords(dOut, dIn))];
        for (int r = 0; r < dOut; r++) {
            for (int c = 0; c < dIn; c++) {
                byte b = mask[r * dIn + c];
                if (b == 1) {
                    words[(r >>> 5) * dIn + c] |= 1 << (r & 31);
                } else if (b != 0) {
                    throw new IllegalArgumentException("column mask of a " + dOut + "×" + dIn + " layer: entry ("
                            + r + ", " + c + ") is " + b + ", not 0 or 1");
                }
            }
        }
        return words;
    }

    /** The inverse of {@link #packColumnMask}: one byte per weight, 1 = kept. */
    static byte[] unpackColumnMask(int[] words, int dOut, int dIn) {
        byte[] mask = new byte[dOut * dIn];
        for (int r = 0; r < dOut; r++) {
            for (int c = 0; c < dIn; c++) {
                mask[r * dIn + c] = (byte) ((words[(r >>> 5) * dIn + c] >>> (r & 31)) & 1);
            }
        }
        return mask;
    }
}
