package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.cuda.GpuParity.Pair;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.sparse.NmPattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The GPU holds the masks packed (a byte per kept weight, a bit per weight: PackedMasks), yet restoreSparseLinear takes
 * and rowKeptIndices / columnMask give back the Backend's forms exactly: random masks (not the magnitude ones, so that
 * nothing the device computes could stand in for them) go in and come out unchanged, the GEMMs read them as the CPU
 * does, and a refresh computes the column mask the CPU computes. Shapes where d_out is not a multiple of 32 (a partly
 * used last mask word), d_in not one either, and groups of 5 that straddle two words.
 */
class SparseMaskRoundTripTest {
    static final int ROWS = 64;

    @ParameterizedTest
    @CsvSource({
        "FP32_DEBUG, 40, 24, 2, 4", "FP32_DEBUG, 40, 24, 1, 4", "FP32_DEBUG, 48, 40, 2, 8",
        "FP32_DEBUG, 36, 36, 3, 4", "FP32_DEBUG, 40, 40, 2, 5", "FP32_DEBUG, 66, 30, 1, 2",
        "BF16, 40, 24, 2, 4", "BF16, 64, 96, 2, 4", "BF16, 96, 64, 1, 2", "BF16, 96, 64, 2, 8",
    })
    void masksRoundTripThroughThePackedForm(CudaBackend.Precision precision, int dOut, int dIn, int n, int m) {
        NmPattern p = new NmPattern(n, m);
        // A double-pruned layer's dX runs on the 2:4 operand or on the masked dense one, whichever was faster when
        // timed: both are taken here, each set for its shape before a fresh layer's first backward, so that neither
        // depends on a timing.
        for (String dxPath : new String[] {"2:4", "dense", null}) {
            boolean doublePrune = dxPath != null;
            GpuParity t = new GpuParity(precision);
            if (doublePrune) {
                t.gpu.chooseDx(dIn, dOut, ROWS, dxPath.equals("dense"));
            }
            String what = precision + " " + p + " " + dOut + "×" + dIn
                    + (doublePrune ? " double-pruned, dX on the " + dxPath + " GEMM" : "") + ", seed " + t.seed;
            int k = dIn / m * n;
            int[] kept = randomRowMask(t, dOut, dIn, p);
            byte[] column = doublePrune ? randomColumnMask(t, kept, dOut, dIn, p) : support(kept, dOut, dIn);
            double[] values = t.randomValues(dOut * k, 0.1);
            for (int i = 0; i < values.length; i++) {
                values[i] = precision == CudaBackend.Precision.BF16 ? Bf16.value(Bf16.bits(values[i]))
                        : (float) values[i];
            }
            GpuParity.Two<SparseLinear> w = t.two(s -> s.backend().restoreSparseLinear(values, kept,
                    doublePrune ? column : null, dOut, dIn, p, doublePrune, s.isGpu() ? DType.F32 : DType.F64));

            assertArrayEquals(kept, t.gpu.rowKeptIndices(w.gpu()), "row mask, " + what);
            assertArrayEquals(column, t.gpu.columnMask(w.gpu()), "column mask, " + what);
            // A byte per kept weight and a bit per weight (d_out rounded up to 32 rows), as bench/NOTES.md counts.
            assertEquals((long) dOut * k + 4L * ((dOut + 31) / 32) * dIn, ((CudaSparseLinear) w.gpu()).maskBytes(),
                    "mask bytes, " + what);
            matmulParity(t, w, dOut, dIn, what);

            t.both(s -> s.backend().updateSparseOperands(s.of(w), true));
            assertArrayEquals(kept, t.gpu.rowKeptIndices(w.gpu()), "row mask after a refresh, " + what);
            assertArrayEquals(t.cpu.columnMask(w.cpu()), t.gpu.columnMask(w.gpu()), "column mask after a refresh, "
                    + what);
            matmulParity(t, w, dOut, dIn, what + ", after a refresh");
            System.out.println("packed masks round-trip: " + what);
        }
    }

    /** Forward and backward against the CPU: the operands the masks build, and ∇W gathered at the row mask. */
    static void matmulParity(GpuParity t, GpuParity.Two<SparseLinear> w, int dOut, int dIn, String what) {
        Pair inp = t.gemmOperand(t.activation(), 1, ROWS, dIn);
        Pair bias = t.input(DType.F32, 0.1, dOut);
        Pair out = t.output(t.activation(), ROWS, dOut);
        t.both(s -> s.backend().sparseMatmulForward(s.of(out), s.of(inp), s.of(w), s.of(bias)));
        t.check("forward, " + what, out);
        Pair dout = t.gemmOperand(t.activation(), 1, ROWS, dOut);
        Pair dinp = t.input(t.activation(), 1, ROWS, dIn);
        Pair dvalues = t.input(DType.F32, 1, dOut, w.gpu().keptPerRow());
        Pair db = t.input(DType.F32, 1, dOut);
        t.both(s -> s.backend().sparseMatmulBackward(s.of(dinp), s.of(dvalues), s.of(db), s.of(dout), s.of(inp),
                s.of(w)));
        t.check("backward dinp, " + what, dinp);
        t.check("backward dvalues, " + what, dvalues);
    }

    /** N random offsets of every group, increasing. */
    static int[] randomRowMask(GpuParity t, int dOut, int dIn, NmPattern p) {
        int k = dIn / p.m() * p.n();
        int[] kept = new int[dOut * k];
        int next = 0;
        for (int r = 0; r < dOut; r++) {
            for (int g = 0; g < dIn; g += p.m()) {
                boolean[] take = new boolean[p.m()];
                for (int chosen = 0; chosen < p.n(); ) {
                    int j = t.random.nextInt(p.m());
                    if (!take[j]) {
                        take[j] = true;
                        chosen++;
                    }
                }
                for (int j = 0; j < p.m(); j++) {
                    if (take[j]) {
                        kept[next++] = g + j;
                    }
                }
            }
        }
        return kept;
    }

    /** Within the row mask, at most N of every M along d_out, each kept position chosen by a coin. */
    static byte[] randomColumnMask(GpuParity t, int[] kept, int dOut, int dIn, NmPattern p) {
        byte[] rowSupport = support(kept, dOut, dIn);
        byte[] mask = new byte[dOut * dIn];
        for (int g = 0; g < dOut; g += p.m()) {
            for (int c = 0; c < dIn; c++) {
                int taken = 0;
                for (int j = 0; j < p.m() && taken < p.n(); j++) {
                    int i = (g + j) * dIn + c;
                    if (rowSupport[i] == 1 && t.random.nextBoolean()) {
                        mask[i] = 1;
                        taken++;
                    }
                }
            }
        }
        return mask;
    }

    /** The row mask's positions as a byte per weight (the column mask of a layer that is not double-pruned). */
    private static byte[] support(int[] kept, int dOut, int dIn) {
        byte[] mask = new byte[dOut * dIn];
        int k = kept.length / dOut;
        for (int r = 0; r < dOut; r++) {
            for (int j = 0; j < k; j++) {
                mask[r * dIn + kept[r * k + j]] = 1;
            }
        }
        return mask;
    }
}
