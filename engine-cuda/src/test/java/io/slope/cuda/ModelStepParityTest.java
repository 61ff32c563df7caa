package io.slope.cuda;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.AdamW;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * One whole training step of the GPT model on the GPU against the fp64 CPU reference (issue 5 "Correctness"): in the
 * fp32 debug mode the loss and every parameter gradient within 1e-5; in the bf16 mode the loss within 1e-2 and every
 * gradient within 3e-2. After the step the refreshed column masks may differ only in groups whose 2nd and 3rd
 * magnitudes are closer than the two weights' discrepancy; the fraction is reported.
 *
 * <p>The parameters after AdamW are not held to 1e-5: Adam's first update is lr·g/(|g| + ε), about lr·sign(g), so a
 * weight whose gradient is a cancellation near zero moves by ±lr on either backend depending on rounding. What is
 * asserted is that every weight that moved differently (by more than 1e-6) had such a gradient: relative gradient
 * error at least 1e-4, or |g| below 1e-6. The optimizer kernel alone is held to 1e-6 in CudaParityTest.
 */
class ModelStepParityTest {
    private static final int B = 4;
    private static final ResolvedSpec.Optimizer ADAMW =
            new ResolvedSpec.Optimizer(1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0);

    @ParameterizedTest
    @EnumSource(Mode.class)
    void fp32DebugStepMatchesTheCpu(Mode mode) {
        step(CudaBackend.Precision.FP32_DEBUG, mode, 1e-5, 1e-5);
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void bf16StepMatchesTheCpuWithinBf16Bounds(Mode mode) {
        step(CudaBackend.Precision.BF16, mode, 1e-2, 3e-2);
    }

    private static void step(CudaBackend.Precision precision, Mode mode, double lossBound, double gradBound) {
        CudaBackend gpu = GpuBackends.get(precision);
        GptConfig config = new GptConfig(2, 2, 128, 64, 96, mode, NmPattern.twoFour(), true);
        long seed = System.nanoTime();
        Map<String, double[]> init = GptModel.initialWeights(config, seed);
        int[] windows = new int[B * (config.seqLen() + 1)];
        for (int i = 0; i < windows.length; i++) {
            windows[i] = (int) Philox.uniformLong(seed, 1, i, config.vocab());
        }
        int[] in = Windows.inputs(windows, config.seqLen());
        int[] out = Windows.targets(windows, config.seqLen());
        try (CpuBackend cpu = new CpuBackend(2)) {
            GptModel g = GptModel.fromDenseWeights(gpu, config, DType.F32, init);
            GptModel c = GptModel.fromDenseWeights(cpu, config, DType.F64, init);
            double scale = 1.0 / (B * config.seqLen());
            String what = mode + " " + precision + ", seed " + seed;
            for (GptModel m : List.of(g, c)) {
                m.parameters().forEach(p -> m.backend().zero(p.grad()));
                m.forwardBackward(in, out, B, scale);
            }
            double lossErr = Math.abs(g.meanLoss(B) - c.meanLoss(B)) / Math.abs(c.meanLoss(B));
            System.out.printf("model step %-40s loss gpu %.6f cpu %.6f rel err %.2e (bound %.0e)%n", what,
                    g.meanLoss(B), c.meanLoss(B), lossErr, lossBound);
            assertTrue(lossErr <= lossBound, "loss, " + what + ": " + lossErr);
            double worst = 0;
            String worstName = "";
            List<Parameter> pg = g.parameters();
            List<Parameter> pc = c.parameters();
            double[][] gradG = new double[pg.size()][];
            double[][] gradC = new double[pg.size()][];
            for (int i = 0; i < pg.size(); i++) {
                gradG[i] = gpu.download(pg.get(i).grad());
                gradC[i] = cpu.download(pc.get(i).grad());
                double err = relativeError(gradG[i], gradC[i]);
                assertTrue(err <= gradBound, "gradient of " + pg.get(i).name() + ", " + what + ": " + err);
                if (err > worst) {
                    worst = err;
                    worstName = pg.get(i).name();
                }
            }
            System.out.printf("model step %-40s worst gradient error %.2e (%s, bound %.0e)%n", what, worst,
                    worstName, gradBound);

            AdamW adamG = new AdamW(gpu, ADAMW);
            AdamW adamC = new AdamW(cpu, ADAMW);
            adamG.step(pg, 1e-3);
            adamC.step(pc, 1e-3);
            refresh(gpu, pg);
            refresh(cpu, pc);
            double worstParam = 0;
            long movedDifferently = 0;
            long groups = 0;
            long differing = 0;
            for (int i = 0; i < pg.size(); i++) {
                double[] wg = gpu.download(pg.get(i).value());
                double[] wc = cpu.download(pc.get(i).value());
                worstParam = Math.max(worstParam, relativeError(wg, wc));
                for (int j = 0; j < wg.length; j++) {
                    if (Math.abs(wg[j] - wc[j]) > 1e-6) {
                        movedDifferently++;
                        double gc = gradC[i][j];
                        double gradErr = Math.abs(gradG[i][j] - gc) / Math.abs(gc);
                        assertTrue(precision != CudaBackend.Precision.FP32_DEBUG || Math.abs(gc) < 1e-6
                                || gradErr >= 1e-4, pg.get(i).name() + "[" + j + "] moved by " + (wg[j] - wc[j])
                                + " more than the CPU's although its gradient " + gc + " agrees to " + gradErr + ", "
                                + what);
                    }
                }
                if (pg.get(i).isSparse() && mode == Mode.SLOPE) {
                    long[] counts = compareColumnMasks(gpu, pg.get(i), cpu, pc.get(i), config.pattern(), what);
                    groups += counts[0];
                    differing += counts[1];
                }
            }
            System.out.printf("model step %-40s parameters after AdamW: worst error %.2e, %d weights moved "
                    + "differently (near-zero gradients); column-mask groups differing %d of %d (%.2e)%n", what,
                    worstParam, movedDifferently, differing, groups, groups == 0 ? 0.0 : (double) differing / groups);
            g.close();
            c.close();
        }
    }

    private static void refresh(Backend backend, List<Parameter> params) {
        for (Parameter p : params) {
            if (p.isSparse()) {
                backend.updateSparseOperands(p.sparse(), true);
            }
        }
    }

    /**
     * Counts column groups (M rows of one column) and those whose masks differ, asserting that every difference sits
     * where the 2nd and 3rd largest magnitudes are closer than the weights differ between the backends.
     */
    private static long[] compareColumnMasks(Backend gpu, Parameter g, Backend cpu, Parameter c, NmPattern p,
            String what) {
        int dOut = g.sparse().dOut();
        int dIn = g.sparse().dIn();
        byte[] mg = gpu.columnMask(g.sparse());
        byte[] mc = cpu.columnMask(c.sparse());
        double[] wg = io.slope.engine.sparse.NmMasks.scatterKept(gpu.download(g.value()), gpu.rowKeptIndices(
                g.sparse()), dOut, dIn);
        double[] wc = io.slope.engine.sparse.NmMasks.scatterKept(cpu.download(c.value()), cpu.rowKeptIndices(
                c.sparse()), dOut, dIn);
        long groups = 0;
        long differing = 0;
        for (int r0 = 0; r0 < dOut; r0 += p.m()) {
            for (int col = 0; col < dIn; col++) {
                groups++;
                boolean same = true;
                double discrepancy = 0;
                double[] mags = new double[p.m()];
                for (int j = 0; j < p.m(); j++) {
                    int i = (r0 + j) * dIn + col;
                    same &= mg[i] == mc[i];
                    discrepancy = Math.max(discrepancy, Math.abs(wg[i] - wc[i]));
                    mags[j] = Math.abs(wc[i]);
                }
                if (same) {
                    continue;
                }
                differing++;
                java.util.Arrays.sort(mags);
                double gap = mags[p.m() - p.n()] - mags[p.m() - p.n() - 1];
                assertTrue(gap <= 2 * discrepancy, "column mask of " + g.name() + " differs at rows " + r0 + "+, column "
                        + col + " where the N-th and next magnitudes differ by " + gap + " > 2 × the discrepancy "
                        + discrepancy + ", " + what);
            }
        }
        return new long[] {groups, differing};
    }
}
