package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.sparse.NmPattern;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The device's row and column prune kernels choose exactly what NmMasks chooses, bit for bit, on identical fp32
 * weights, including ties (lower index kept) and zeros (never kept by the column mask): weights drawn from a few
 * magnitudes so that ties are everywhere.
 */
class NmMaskKernelTest {
    @Test
    void rowAndColumnMasksEqualTheCpuReferenceWithTiesAndZeros() {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        for (NmPattern p : List.of(new NmPattern(2, 4), new NmPattern(1, 4), new NmPattern(2, 8),
                new NmPattern(3, 4), new NmPattern(1, 2))) {
            // One tile of the column prune; then part tiles both ways (80 rows: a mask word of 16; 200 columns).
            assertMasksEqual(t, p, 64, 128);
            assertMasksEqual(t, p, 80, 200);
        }
        // M = 3 does not divide a mask word's 32 rows: the column prune over a dense copy.
        assertMasksEqual(t, new NmPattern(1, 3), 96, 120);
    }

    private static void assertMasksEqual(GpuParity t, NmPattern p, int dOut, int dIn) {
        for (int round = 0; round < 3; round++) {
            double[] w = new double[dOut * dIn];
            for (int i = 0; i < w.length; i++) {
                // Magnitudes 0..4 in steps of 1/8, either sign: fp32 exact, many ties, some zeros.
                w[i] = (t.random.nextInt(9) - 4) / 8.0 * (round == 2 ? 1 : t.random.nextInt(1, 3));
            }
            SparseLinear g = t.gpu.sparseLinear(w, dOut, dIn, p, true, DType.F32);
            SparseLinear c = t.cpu.sparseLinear(w, dOut, dIn, p, true, DType.F32);
            String what = p + " " + dOut + "×" + dIn + " round " + round + ", seed " + t.seed;
            assertArrayEquals(t.cpu.rowKeptIndices(c), t.gpu.rowKeptIndices(g), "row mask " + what);
            assertArrayEquals(t.cpu.columnMask(c), t.gpu.columnMask(g), "column mask " + what);
            System.out.println("masks bit-identical: " + what);
        }
    }
}
