package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.sparse.NmPattern;
import java.util.SplittableRandom;

/**
 * Per-GEMM timings behind the SLoPe speed bound (bench/NOTES.md): for each weight shape dOut×dIn and batch width n, the
 * dense cuBLASLt GEMM and the cuSPARSELt 2:4 GEMM in both orientations a sparse layer uses (forward Y = X·(W^R)ᵀ and
 * dX = dY·W^{R,C}), plus the compression of the dX operand that a column-mask refresh costs. bf16 operands on random
 * data, CUDA events, mean of 20 after a warm-up; one JSON line per shape.
 *
 * <p>{@code GemmBench n dOut×dIn ...}
 */
public final class GemmBench {
    private static final int REPS = 20;

    private GemmBench() {}

    /** About a second of large GEMMs first: an idle card starts at low clocks (seen: 345 MHz before the first run). */
    private static void warmUp(CudaBackend b, int n) {
        CudaTensor w = (CudaTensor) b.zeros(DType.BF16, 4096, 4096);
        CudaTensor x = (CudaTensor) b.zeros(DType.BF16, n, 4096);
        CudaTensor y = (CudaTensor) b.zeros(DType.BF16, n, 4096);
        b.device().fillBf16(w.pointer, w.count, 0.01f);
        b.device().fillBf16(x.pointer, x.count, 0.01f);
        long end = System.nanoTime() + 1_000_000_000L;
        while (System.nanoTime() < end) {
            b.device().eventMillis(() -> b.matmulForward(y, x, w, null), 20);
        }
    }

    public static void main(String[] args) {
        int n = Integer.parseInt(args[0]);
        try (CudaBackend b = new CudaBackend(0, CudaBackend.Precision.BF16)) {
            CudaDevice device = b.device();
            warmUp(b, n);
            for (int i = 1; i < args.length; i++) {
                String[] s = args[i].split("x");
                int dOut = Integer.parseInt(s[0]);
                int dIn = Integer.parseInt(s[1]);
                SplittableRandom random = new SplittableRandom(i);
                double[] w = random.doubles((long) dOut * dIn, -0.1, 0.1).toArray();
                CudaSparseLinear layer = (CudaSparseLinear) b.sparseLinear(w, dOut, dIn, NmPattern.twoFour(), true,
                        DType.F32);
                CudaTensor wDense = (CudaTensor) b.zeros(DType.BF16, dOut, dIn);
                b.upload(wDense, w);
                CudaTensor x = (CudaTensor) b.zeros(DType.BF16, n, dIn);
                b.upload(x, random.doubles((long) n * dIn, -1, 1).toArray());
                CudaTensor dy = (CudaTensor) b.zeros(DType.BF16, n, dOut);
                b.upload(dy, random.doubles((long) n * dOut, -1, 1).toArray());
                CudaTensor y = (CudaTensor) b.zeros(DType.BF16, n, dOut);
                CudaTensor dx = (CudaTensor) b.zeros(DType.BF16, n, dIn);
                float denseFwd = device.eventMillis(() -> b.matmulForward(y, x, wDense, null), REPS);
                float denseDx = device.eventMillis(() -> b.rawGemm(dx, dy, false, wDense, false, n, dIn, dOut), REPS);
                CusparseLt.Plan fwd = b.cusparse().plan(layer.forward, n);
                CusparseLt.Plan bwd = b.cusparse().plan(layer.backward, n);
                float sparseFwd = device.eventMillis(() -> fwd.multiply(layer.forward, x.address, y.address), REPS);
                float sparseDx = device.eventMillis(() -> bwd.multiply(layer.backward, dy.address, dx.address), REPS);
                float update = device.eventMillis(() -> b.updateSparseOperands(layer, false), REPS);
                float refresh = device.eventMillis(() -> b.updateSparseOperands(layer, true), REPS);
                double flop = 2.0 * n * dOut * dIn;
                System.out.printf("{\"n\": %d, \"dOut\": %d, \"dIn\": %d, \"denseFwdMs\": %.4f, \"sparseFwdMs\": %.4f, "
                        + "\"denseDxMs\": %.4f, \"sparseDxMs\": %.4f, \"fwdSpeedup\": %.3f, \"dxSpeedup\": %.3f, "
                        + "\"denseFwdTflops\": %.1f, \"operandUpdateMs\": %.4f, \"operandRefreshMs\": %.4f, "
                        + "\"fwdAlg\": %d, \"dxAlg\": %d}%n", n, dOut, dIn, denseFwd, sparseFwd, denseDx, sparseDx,
                        denseFwd / sparseFwd, denseDx / sparseDx, flop / denseFwd / 1e9, update, refresh,
                        fwd.algorithm.configId(), bwd.algorithm.configId());
            }
        }
    }
}
