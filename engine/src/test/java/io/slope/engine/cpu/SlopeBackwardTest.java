package io.slope.engine.cpu;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SLoPe's backward against matrices built by brute force, independently of the engine's pruning code: for a given dY,
 * dX = dY·W^{R,C} where W^{R,C} keeps, in every column, the top-N |W^R| of each group of M rows (found by sorting);
 * the weight gradient is exactly (dYᵀ·X) at the row mask; the bias gradient the column sums of dY. SLoPe's dX is an
 * approximation of the true gradient by design, so it is never checked by finite differences.
 */
class SlopeBackwardTest {
    private static final int C = 16;
    private static final int ROWS = 6;

    @ParameterizedTest(name = "{0}: {1}x{2}")
    @CsvSource({"qkv,48,16", "attn-proj,16,16", "fc,64,16", "fc-proj,16,64"})
    void gradientsOfEachLayerShapeEqualTheBruteForceDoublePrunedProducts(String layer, int dOut, int dIn) {
        NmPattern p = NmPattern.twoFour();
        double[] w = random(dOut * dIn, "w/" + layer);
        double[] x = random(ROWS * dIn, "x/" + layer);
        double[] dy = random(ROWS * dOut, "dy/" + layer);
        try (CpuBackend backend = new CpuBackend(2)) {
            SparseLinear s = backend.sparseLinear(w, dOut, dIn, p, true, DType.F64);
            Tensor xt = upload(backend, x, ROWS, dIn);
            Tensor dyt = upload(backend, dy, ROWS, dOut);
            Tensor dx = backend.zeros(DType.F64, ROWS, dIn);
            Tensor dv = backend.zeros(DType.F64, s.values().shape());
            Tensor db = backend.zeros(DType.F64, dOut);
            backend.sparseMatmulBackward(dx, dv, db, dyt, xt, s);

            double[] wr = bruteRowPrune(w, dOut, dIn, p);
            double[] wrc = bruteColumnPrune(wr, dOut, dIn, p);
            double[] expectedDx = matmul(dy, wrc, ROWS, dOut, dIn);
            assertTrue(relativeError(backend.download(dx), expectedDx) < 1e-14, "dX = dY·W^{R,C}");
            assertTrue(relativeError(matmul(dy, wr, ROWS, dOut, dIn), expectedDx) > 1e-3,
                    "double pruning must change dX for random weights");

            double[] g = new double[dOut * dIn];
            for (int o = 0; o < dOut; o++) {
                for (int i = 0; i < dIn; i++) {
                    for (int r = 0; r < ROWS; r++) {
                        g[o * dIn + i] += dy[r * dOut + o] * x[r * dIn + i];
                    }
                }
            }
            int k = dIn / 2;
            double[] expectedDv = new double[dOut * k];
            for (int o = 0; o < dOut; o++) {
                int j = 0;
                for (int i = 0; i < dIn; i++) {
                    if (wr[o * dIn + i] != 0) {
                        expectedDv[o * k + j++] = g[o * dIn + i];
                    }
                }
            }
            assertTrue(relativeError(backend.download(dv), expectedDv) < 1e-14, "dW = (dYᵀ·X) at the row mask");
            double[] expectedDb = new double[dOut];
            for (int r = 0; r < ROWS; r++) {
                for (int o = 0; o < dOut; o++) {
                    expectedDb[o] += dy[r * dOut + o];
                }
            }
            assertTrue(relativeError(backend.download(db), expectedDb) < 1e-14, "db = column sums of dY");

            Tensor y = backend.zeros(DType.F64, ROWS, dOut);
            backend.sparseMatmulForward(y, xt, s, null);
            double[] wrT = new double[dIn * dOut];
            for (int o = 0; o < dOut; o++) {
                for (int i = 0; i < dIn; i++) {
                    wrT[i * dOut + o] = wr[o * dIn + i];
                }
            }
            assertTrue(relativeError(backend.download(y), matmul(x, wrT, ROWS, dIn, dOut)) < 1e-14,
                    "Y = X·(W^R)ᵀ");
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"qkv,48,16", "fc-proj,16,64"})
    void withoutDoublePruningDxUsesTheRowPrunedWeight(String layer, int dOut, int dIn) {
        NmPattern p = NmPattern.twoFour();
        double[] w = random(dOut * dIn, "w/" + layer);
        double[] dy = random(ROWS * dOut, "dy/" + layer);
        try (CpuBackend backend = new CpuBackend(1)) {
            SparseLinear s = backend.sparseLinear(w, dOut, dIn, p, false, DType.F64);
            Tensor dx = backend.zeros(DType.F64, ROWS, dIn);
            backend.sparseMatmulBackward(dx, backend.zeros(DType.F64, s.values().shape()), null,
                    upload(backend, dy, ROWS, dOut), upload(backend, random(ROWS * dIn, "x"), ROWS, dIn), s);
            double[] expected = matmul(dy, bruteRowPrune(w, dOut, dIn, p), ROWS, dOut, dIn);
            assertTrue(relativeError(backend.download(dx), expected) < 1e-14);
            byte[] mask = backend.columnMask(s);
            double[] wr = bruteRowPrune(w, dOut, dIn, p);
            for (int i = 0; i < wr.length; i++) {
                assertTrue((mask[i] == 1) == (wr[i] != 0), "column mask = row mask support without double pruning");
            }
        }
    }

    /** Keep the N largest |w| of each group of M along a row; a stable sort keeps the lower index on ties. */
    static double[] bruteRowPrune(double[] w, int rows, int cols, NmPattern p) {
        double[] out = new double[w.length];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < cols; g += p.m()) {
                int base = r * cols + g;
                Integer[] order = IntStream.range(0, p.m()).boxed().toArray(Integer[]::new);
                Arrays.sort(order, Comparator.comparingDouble((Integer j) -> -Math.abs(w[base + j])));
                for (int k = 0; k < p.n(); k++) {
                    out[base + order[k]] = w[base + order[k]];
                }
            }
        }
        return out;
    }

    /** Keep the N largest |w| of each group of M down a column. */
    static double[] bruteColumnPrune(double[] w, int rows, int cols, NmPattern p) {
        double[] out = new double[w.length];
        for (int c = 0; c < cols; c++) {
            int col = c;
            for (int g = 0; g < rows; g += p.m()) {
                int g0 = g;
                Integer[] order = IntStream.range(0, p.m()).boxed().toArray(Integer[]::new);
                Arrays.sort(order, Comparator.comparingDouble((Integer j) -> -Math.abs(w[(g0 + j) * cols + col])));
                for (int k = 0; k < p.n(); k++) {
                    int idx = (g0 + order[k]) * cols + c;
                    out[idx] = w[idx];
                }
            }
        }
        return out;
    }

    static double[] random(int n, String purpose) {
        double[] v = new double[n];
        long stream = Philox.stream(purpose);
        for (int i = 0; i < n; i++) {
            v[i] = Philox.normal(5, stream, i);
        }
        return v;
    }

    private static Tensor upload(CpuBackend backend, double[] v, int rows, int cols) {
        Tensor t = backend.zeros(DType.F64, rows, cols);
        backend.upload(t, v);
        return t;
    }

    /** a (n × k) · b (k × m), b row-major k × m. */
    private static double[] matmul(double[] a, double[] b, int n, int k, int m) {
        double[] c = new double[n * m];
        for (int i = 0; i < n; i++) {
            for (int l = 0; l < k; l++) {
                for (int j = 0; j < m; j++) {
                    c[i * m + j] += a[i * k + l] * b[l * m + j];
                }
            }
        }
        return c;
    }

}
