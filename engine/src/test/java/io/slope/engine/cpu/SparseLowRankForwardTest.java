package io.slope.engine.cpu;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.merge.Merge;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The inference form's operation ({@code Backend#sparseLowRankForward}) on the CPU reference: bit for bit the two
 * operations it stands for, the sparse product then the adapter at scale 1 (xa at the output's precision), whatever
 * the output held before; and, in fp64, out = X·(W^R)ᵀ + (X·A)·B + bias computed here from the dense matrices.
 */
class SparseLowRankForwardTest {
    private static final int D_OUT = 64;
    private static final int D_IN = 32;
    private static final int RANK = 8;
    private static final int ROWS = 5;

    @ParameterizedTest(name = "{0} activations, bias {1}")
    @CsvSource({"F64, true", "F32, true", "BF16, true", "BF16, false"})
    void equalsTheSparseProductThenTheAdapterAtScaleOne(DType activation, boolean withBias) {
        try (CpuBackend cpu = new CpuBackend(2)) {
            double[] a = Merge.pruneAdapterA(random(D_IN * RANK, "a"), RANK, NmPattern.twoFour());
            SparseLinear w = cpu.sparseLinear(random(D_OUT * D_IN, "w"), D_OUT, D_IN, NmPattern.twoFour(), true,
                    DType.F32);
            Tensor inp = upload(cpu, activation, random(ROWS * D_IN, "x"), ROWS, D_IN);
            Tensor at = upload(cpu, DType.F32, a, D_IN, RANK);
            Tensor bt = upload(cpu, DType.F32, random(RANK * D_OUT, "b"), RANK, D_OUT);
            Tensor bias = withBias ? upload(cpu, DType.F32, random(D_OUT, "bias"), D_OUT) : null;

            Tensor fused = upload(cpu, activation, random(ROWS * D_OUT, "stale"), ROWS, D_OUT);
            cpu.sparseLowRankForward(fused, inp, w, at, bt, bias);
            Tensor twoOperations = cpu.zeros(activation, ROWS, D_OUT);
            cpu.sparseMatmulForward(twoOperations, inp, w, bias);
            cpu.adapterForward(twoOperations, cpu.zeros(activation, ROWS, RANK), inp, at, bt, 1.0);
            assertArrayEquals(cpu.download(twoOperations), cpu.download(fused));

            if (activation == DType.F64) {
                double[] expected = expected(cpu.download(inp), denseWr(cpu, w), cpu.download(at),
                        cpu.download(bt), withBias ? cpu.download(bias) : new double[D_OUT]);
                assertTrue(relativeError(cpu.download(fused), expected) < 1e-14, "X·(W^R)ᵀ + (X·A)·B + bias");
            }
        }
    }

    /** W^R as a dense dOut × dIn matrix from the kept values and the row mask. */
    private static double[] denseWr(CpuBackend cpu, SparseLinear w) {
        double[] values = cpu.download(w.values());
        int[] kept = cpu.rowKeptIndices(w);
        int k = w.keptPerRow();
        double[] dense = new double[D_OUT * D_IN];
        for (int o = 0; o < D_OUT; o++) {
            for (int j = 0; j < k; j++) {
                dense[o * D_IN + kept[o * k + j]] = values[o * k + j];
            }
        }
        return dense;
    }

    private static double[] expected(double[] x, double[] wr, double[] a, double[] b, double[] bias) {
        double[] out = new double[ROWS * D_OUT];
        for (int row = 0; row < ROWS; row++) {
            double[] xa = new double[RANK];
            for (int q = 0; q < RANK; q++) {
                for (int i = 0; i < D_IN; i++) {
                    xa[q] += x[row * D_IN + i] * a[i * RANK + q];
                }
            }
            for (int o = 0; o < D_OUT; o++) {
                double s = bias[o];
                for (int i = 0; i < D_IN; i++) {
                    s += x[row * D_IN + i] * wr[o * D_IN + i];
                }
                for (int q = 0; q < RANK; q++) {
                    s += xa[q] * b[q * D_OUT + o];
                }
                out[row * D_OUT + o] = s;
            }
        }
        return out;
    }

    private static Tensor upload(CpuBackend cpu, DType type, double[] values, int... shape) {
        Tensor t = cpu.zeros(type, shape);
        cpu.upload(t, values);
        return t;
    }

    private static double[] random(int n, String what) {
        long stream = Philox.stream("test/sparse-low-rank/" + what);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = Philox.normal(7, stream, i);
        }
        return v;
    }
}
