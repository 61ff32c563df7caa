package io.slope.engine.model;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.rng.Philox;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole model's analytic gradient against central finite differences in fp64, for every parameter, in the two
 * modes whose gradient is exact (SLoPe's dX is an approximation by design and is checked by construction elsewhere).
 */
class GptModelGradientTest {
    private static final int B = 2;
    private static final double H = 1e-5;
    private static final double TOLERANCE = 1e-6;

    @ParameterizedTest
    @EnumSource(value = Mode.class, names = {"DENSE", "SPARSE_NO_DOUBLE_PRUNE"})
    void everyParameterGradientMatchesFiniteDifferences(Mode mode) {
        GptConfig config = TinyModels.config(mode);
        try (CpuBackend backend = new CpuBackend(1)) {
            Map<String, double[]> init = GptModel.initialWeights(config, 7);
            // Larger-than-init weights make every path matter numerically (GELU curvature, attention softmax).
            init.replaceAll((name, w) -> scaled(w, name.endsWith(".bias") ? 0.0 : 10.0, name));
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F64, init);
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 3);
            int[] in = Windows.inputs(windows, config.seqLen());
            int[] out = Windows.targets(windows, config.seqLen());
            assertGradientsMatchFiniteDifferences(model, backend, in, out, mode.toString());
        }
    }

    /** Adapters with random nonzero A and B on every sparse layer: their gradients and everyone else's still check. */
    @Test
    void withAdaptersEveryParameterGradientMatchesFiniteDifferences() {
        GptConfig config = TinyModels.config(Mode.SPARSE_NO_DOUBLE_PRUNE);
        try (CpuBackend backend = new CpuBackend(1)) {
            Map<String, double[]> init = GptModel.initialWeights(config, 7);
            init.replaceAll((name, w) -> scaled(w, name.endsWith(".bias") ? 0.0 : 10.0, name));
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F64, init);
            int rank = 4;
            Map<String, double[]> adapters = GptModel.initialAdapterWeights(config, rank, 9);
            long stream = Philox.stream("test/lora_B");
            adapters.replaceAll((name, w) -> {
                double[] v = w.clone();
                for (int i = 0; i < v.length; i++) {
                    v[i] = name.endsWith(".lora_B") ? Philox.normal(11, stream, i) : 0.5 * v[i];
                }
                return v;
            });
            model.attachAdapters(adapters, rank, 1.0 / rank);
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 3);
            assertGradientsMatchFiniteDifferences(model, backend, Windows.inputs(windows, config.seqLen()),
                    Windows.targets(windows, config.seqLen()), "with adapters");
        }
    }

    private static void assertGradientsMatchFiniteDifferences(GptModel model, CpuBackend backend, int[] in,
            int[] out, String label) {
        double scale = 1.0 / (B * model.config().seqLen());
        for (var p : model.parameters()) {
            backend.zero(p.grad());
        }
        model.forwardBackward(in, out, B, scale);
        for (Parameter p : model.parameters()) {
            double[] analytic = backend.download(p.grad());
            double[] value = backend.download(p.value());
            double[] numeric = new double[value.length];
            for (int i = 0; i < value.length; i++) {
                double orig = value[i];
                value[i] = orig + H;
                double plus = lossWith(model, backend, p, value, in, out);
                value[i] = orig - H;
                double minus = lossWith(model, backend, p, value, in, out);
                value[i] = orig;
                numeric[i] = (plus - minus) / (2 * H);
            }
            lossWith(model, backend, p, value, in, out);
            double err = relativeError(analytic, numeric);
            assertTrue(err < TOLERANCE, label + " " + p.name() + ": normwise error " + err);
        }
    }

    private static double lossWith(GptModel model, CpuBackend backend, Parameter p, double[] value, int[] in,
            int[] out) {
        backend.upload(p.value(), value);
        if (p.isSparse()) {
            backend.updateSparseOperands(p.sparse(), false);
        }
        model.forward(in, out, B);
        return model.meanLoss(B);
    }

    private static double[] scaled(double[] w, double factor, String name) {
        if (name.contains("ln_")) {
            return w;
        }
        double[] s = w.clone();
        for (int i = 0; i < s.length; i++) {
            s[i] *= factor;
        }
        return s;
    }

}
