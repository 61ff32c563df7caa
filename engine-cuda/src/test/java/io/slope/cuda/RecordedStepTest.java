package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.slope.engine.backend.DType;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.AdamW;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The training pass recorded as a CUDA Graph and replayed ({@code Backend.repeat}; {@code SLOPE_CUDA_GRAPHS=0} turns it
 * off) computes what the eager pass computes, bit for bit: eight steps, each on new tokens (a replay that kept the
 * recorded call's tokens would differ), with a column-mask refresh between them, every loss and every weight after
 * them.
 */
class RecordedStepTest {
    private static final int B = 4;
    private static final int STEPS = 8;
    private static final ResolvedSpec.Optimizer ADAMW =
            new ResolvedSpec.Optimizer(1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0);

    @ParameterizedTest
    @EnumSource(Mode.class)
    void replayedPassesComputeWhatTheEagerOnesDo(Mode mode) {
        CudaBackend gpu = GpuBackends.get(CudaBackend.Precision.BF16);
        double[] eager = train(gpu, mode, false);
        double[] replayed = train(gpu, mode, true);
        assertArrayEquals(eager, replayed, mode + ": losses of " + STEPS + " steps, then every weight");
    }

    private static double[] train(CudaBackend gpu, Mode mode, boolean graphs) {
        gpu.recordRepeatedPasses(graphs);
        GptConfig config = new GptConfig(2, 2, 128, 64, 96, mode, NmPattern.twoFour(), true);
        List<Double> out = new ArrayList<>();
        try (GptModel model = GptModel.fromDenseWeights(gpu, config, DType.F32, GptModel.initialWeights(config, 7))) {
            AdamW optimizer = new AdamW(gpu, ADAMW);
            double scale = 1.0 / (B * config.seqLen());
            for (int step = 0; step < STEPS; step++) {
                int[] windows = new int[B * (config.seqLen() + 1)];
                for (int i = 0; i < windows.length; i++) {
                    windows[i] = (int) Philox.uniformLong(7, step, i, config.vocab());
                }
                gpu.zero(model.parameters().stream().map(Parameter::grad).toList());
                model.forwardBackward(Windows.inputs(windows, config.seqLen()),
                        Windows.targets(windows, config.seqLen()), B, scale);
                out.add(model.meanLoss(B));
                optimizer.step(model.parameters(), 1e-3);
                boolean refresh = (step + 1) % 4 == 0;
                for (Parameter p : model.parameters()) {
                    if (p.isSparse()) {
                        gpu.updateSparseOperands(p.sparse(), refresh);
                    }
                }
            }
            for (Parameter p : model.parameters()) {
                for (double v : gpu.download(p.value())) {
                    out.add(v);
                }
            }
        } finally {
            gpu.recordRepeatedPasses(CudaBackend.GRAPHS_BY_DEFAULT);
        }
        return out.stream().mapToDouble(Double::doubleValue).toArray();
    }
}
