package io.slope.engine.sparse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.rng.Philox;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NmMasksTest {
    @ParameterizedTest(name = "{0}:{1}")
    @CsvSource({"2,4", "1,2", "2,8", "1,4", "3,4"})
    void rowMaskKeepsExactlyNPerGroupInIncreasingOrder(int n, int m) {
        NmPattern p = new NmPattern(n, m);
        int rows = 8;
        int cols = 4 * m;
        int[] kept = NmMasks.rowKeptIndices(random(rows * cols, 1), rows, cols, p);
        int perRow = cols / m * n;
        assertEquals(rows * perRow, kept.length);
        for (int r = 0; r < rows; r++) {
            int[] perGroup = new int[cols / m];
            for (int j = 0; j < perRow; j++) {
                int idx = kept[r * perRow + j];
                perGroup[idx / m]++;
                if (j > 0) {
                    assertTrue(kept[r * perRow + j - 1] < idx, "indices increase");
                }
            }
            for (int g : perGroup) {
                assertEquals(n, g, "kept per group");
            }
        }
    }

    @Test
    void rowMaskKeepsTheLargestMagnitudesAndTheLowerIndexOnTies() {
        double[] w = {0.1, -0.9, 0.5, 0.2, /* ties: */ 0.3, -0.3, 0.3, 0.1};
        assertArrayEquals(new int[] {1, 2, 4, 5}, NmMasks.rowKeptIndices(w, 1, 8, NmPattern.twoFour()));
    }

    @Test
    void columnMaskWorksDownColumnsAndNeverKeepsZeros() {
        // one column, 4 rows: |values| 0.2, 0.7, 0, 0.7 → the two 0.7s; a column with one nonzero keeps only it.
        double[] w = {0.2, 0.0, 0.7, 0.5, 0.0, 0.0, -0.7, 0.0};
        byte[] mask = NmMasks.columnMask(w, 4, 2, NmPattern.twoFour());
        assertArrayEquals(new byte[] {0, 0, 1, 1, 0, 0, 1, 0}, mask);
    }

    @Test
    void doublePrunedDensityFor24OnRandom512SquareIsLemma431sValue() {
        int d = 512;
        NmPattern p = NmPattern.twoFour();
        double[] w = random(d * d, 2);
        int[] kept = NmMasks.rowKeptIndices(w, d, d, p);
        double[] wr = NmMasks.scatterKept(NmMasks.gatherKept(w, kept, d, d), kept, d, d);
        byte[] col = NmMasks.columnMask(wr, d, d, p);
        long keptBoth = 0;
        for (int i = 0; i < col.length; i++) {
            if (col[i] == 1) {
                keptBoth++;
                assertTrue(wr[i] != 0, "support of W^{R,C} must lie inside the support of W^R");
            }
        }
        double density = (double) keptBoth / (d * d);
        assertEquals(0.40625, density, 0.005, "D(W^{R,C}) for 2:4");
    }

    private static double[] random(int n, long seed) {
        double[] v = new double[n];
        long stream = Philox.stream("test/masks");
        for (int i = 0; i < n; i++) {
            v[i] = Philox.normal(seed, stream, i);
        }
        return v;
    }
}
