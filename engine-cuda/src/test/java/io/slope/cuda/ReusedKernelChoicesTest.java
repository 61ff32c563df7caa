package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.KernelChoices;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.sparse.NmPattern;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Issue 14 on the device: a second backend handed the first's kernel choices (as a resumed run is, from its
 * checkpoint) runs the same cuBLASLt and cuSPARSELt algorithms, so the same GEMMs on the same inputs give the same bits.
 */
class ReusedKernelChoicesTest {
    private static final int ROWS = 256;
    private static final int D_IN = 512;
    private static final int D_OUT = 768;

    @Test
    void aSecondBackendGivenTheFirstsChoicesPicksTheSameAlgorithmsAndComputesTheSameBits() {
        GpuBackends.get(CudaBackend.Precision.BF16);
        List<double[]> expected;
        KernelChoices recorded;
        try (CudaBackend first = new CudaBackend(0, CudaBackend.Precision.BF16, CudaBackend.Attention.OWN)) {
            expected = denseAndSparseProducts(first);
            recorded = first.kernelChoices();
        }
        assertTrue(recorded.choices().keySet().stream().anyMatch(k -> k.startsWith(CublasLt.CHOICE_PREFIX))
                && recorded.choices().keySet().stream().anyMatch(k -> k.startsWith(CusparseLt.CHOICE_PREFIX)),
                "both libraries searched: " + recorded.choices().keySet());

        try (CudaBackend second = new CudaBackend(0, CudaBackend.Precision.BF16, CudaBackend.Attention.OWN)) {
            second.reuseKernelChoices(recorded);
            List<double[]> actual = denseAndSparseProducts(second);

            assertEquals(recorded, second.kernelChoices(), "the same algorithm for every shape");
            String[] what = {"dense forward", "dense dX", "dense dW", "2:4 forward", "2:4 dX", "2:4 dW values"};
            for (int i = 0; i < what.length; i++) {
                assertArrayEquals(expected.get(i), actual.get(i), what[i] + " differs with the reused choices");
            }
        }
        System.out.println("reused kernel choices on " + recorded.validFor() + ": " + recorded.choices());
    }

    /** A dense and a 2:4 layer's forward and backward products on fixed inputs, downloaded. */
    private static List<double[]> denseAndSparseProducts(CudaBackend b) {
        SplittableRandom random = new SplittableRandom(14);
        double[] weights = random.doubles((long) D_OUT * D_IN, -0.1, 0.1).toArray();
        Tensor x = filled(b, random, ROWS, D_IN);
        Tensor dy = filled(b, random, ROWS, D_OUT);
        Tensor bias = filled(b, random, D_OUT);
        Tensor w = b.zeros(DType.F32, D_OUT, D_IN);
        b.declareWeight(w);
        b.upload(w, weights);
        List<double[]> out = new ArrayList<>();

        Tensor y = b.zeros(DType.BF16, ROWS, D_OUT);
        b.matmulForward(y, x, w, bias);
        Tensor dx = b.zeros(DType.BF16, ROWS, D_IN);
        Tensor dw = b.zeros(DType.F32, D_OUT, D_IN);
        b.matmulBackward(dx, dw, null, dy, x, w);
        out.add(b.download(y));
        out.add(b.download(dx));
        out.add(b.download(dw));

        SparseLinear sparse = b.sparseLinear(weights, D_OUT, D_IN, NmPattern.twoFour(), true, DType.F32);
        Tensor sy = b.zeros(DType.BF16, ROWS, D_OUT);
        b.sparseMatmulForward(sy, x, sparse, bias);
        Tensor sdx = b.zeros(DType.BF16, ROWS, D_IN);
        Tensor dvalues = b.zeros(DType.F32, D_OUT, sparse.keptPerRow());
        b.sparseMatmulBackward(sdx, dvalues, null, dy, x, sparse);
        out.add(b.download(sy));
        out.add(b.download(sdx));
        out.add(b.download(dvalues));
        return out;
    }

    private static Tensor filled(CudaBackend b, SplittableRandom random, int... shape) {
        Tensor t = b.zeros(DType.BF16, shape);
        b.upload(t, random.doubles(CudaTensor.count(shape), -1, 1).toArray());
        return t;
    }
}
