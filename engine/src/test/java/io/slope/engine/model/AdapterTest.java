package io.slope.engine.model;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.rng.Philox;
import io.slope.engine.train.AdamW;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Lazy low-rank adapters (docs/method.md): insertion is invisible, and their path adds exactly (X·A)·B/r. */
class AdapterTest {
    private static final int B = 2;
    private static final int RANK = 4;
    private static final ResolvedSpec.Optimizer ADAMW =
            new ResolvedSpec.Optimizer(1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0);

    @Test
    void insertingFreshAdaptersLeavesTheOutputUnchanged() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, GptModel.initialWeights(config, 3));
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 5);
            model.forward(Windows.inputs(windows, config.seqLen()), Windows.targets(windows, config.seqLen()), B);
            double[] before = model.logits(B);
            model.attachAdapters(GptModel.initialAdapterWeights(config, RANK, 3), RANK, 1.0 / RANK);
            model.forward(Windows.inputs(windows, config.seqLen()), Windows.targets(windows, config.seqLen()), B);
            assertArrayEquals(before, model.logits(B));
        }
    }

    @Test
    void denseWeightsListEveryParameterInOrderWithSparseLayersAsWRAndTheAdaptersAsTheyAre() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            Map<String, double[]> initial = GptModel.initialWeights(config, 3);
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F64, initial);
            Map<String, double[]> adapters = TinyModels.randomAdapters(config, RANK, 7, 0.3);
            model.attachAdapters(adapters, RANK, 1.0 / RANK);
            Map<String, double[]> dense = model.denseWeights();
            assertEquals(model.parameters().stream().map(Parameter::name).toList(), List.copyOf(dense.keySet()));
            for (Parameter p : model.parameters()) {
                double[] expected = p.group() == Parameter.Group.ADAPTERS ? adapters.get(p.name())
                        : initial.get(p.name());
                if (p.isSparse()) {
                    // W^R: the initial weights at the row mask's kept positions, zeros elsewhere.
                    int dIn = p.sparse().dIn();
                    int[] kept = backend.rowKeptIndices(p.sparse());
                    int perRow = kept.length / p.sparse().dOut();
                    double[] wr = new double[expected.length];
                    for (int i = 0; i < kept.length; i++) {
                        int at = i / perRow * dIn + kept[i];
                        wr[at] = expected[at];
                    }
                    expected = wr;
                }
                assertArrayEquals(expected, dense.get(p.name()), p.name());
            }
        }
    }

    @Test
    void adaptersStartTheirOwnAdamWCountAndJoinEverySparseLayer() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F64, GptModel.initialWeights(config, 3));
            AdamW adamw = new AdamW(backend, ADAMW);
            trainOneStep(model, adamw);
            trainOneStep(model, adamw);
            model.attachAdapters(GptModel.initialAdapterWeights(config, RANK, 3), RANK, 1.0 / RANK);
            trainOneStep(model, adamw);
            assertEquals(3, adamw.stepsTaken(Parameter.Group.MAIN));
            assertEquals(1, adamw.stepsTaken(Parameter.Group.ADAPTERS));
            // Block 0's qkv stays dense (denseFirstQkv), so 2 layers × 4 linears − 1 carry adapters.
            long adapters = model.parameters().stream().filter(p -> p.group() == Parameter.Group.ADAPTERS).count();
            assertEquals(2 * 7, adapters);
        }
    }

    @Test
    void afterOneAdapterStepTheLayerOutputChangesByExactlyXABOverR() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F64, GptModel.initialWeights(config, 3));
            model.attachAdapters(GptModel.initialAdapterWeights(config, RANK, 3), RANK, 1.0 / RANK);
            trainOneStep(model, new AdamW(backend, ADAMW));
            String layer = "h.1.mlp.c_fc";
            Parameter weight = parameter(model, layer + ".weight");
            double[] a = backend.download(parameter(model, layer + ".lora_A").value());
            double[] b = backend.download(parameter(model, layer + ".lora_B").value());
            assertTrue(Arrays.stream(b).anyMatch(v -> v != 0), "one step moves B off zero");

            int dIn = weight.sparse().dIn();
            int dOut = weight.sparse().dOut();
            int rows = 6;
            double[] x = new double[rows * dIn];
            long stream = Philox.stream("test/adapter-input");
            for (int i = 0; i < x.length; i++) {
                x[i] = Philox.normal(1, stream, i);
            }
            Tensor inp = backend.zeros(DType.F64, rows, dIn);
            backend.upload(inp, x);
            Tensor sparseOnly = backend.zeros(DType.F64, rows, dOut);
            backend.sparseMatmulForward(sparseOnly, inp, weight.sparse(), null);
            Tensor withAdapter = backend.zeros(DType.F64, rows, dOut);
            backend.sparseMatmulForward(withAdapter, inp, weight.sparse(), null);
            backend.adapterForward(withAdapter, backend.zeros(DType.F64, rows, RANK), inp,
                    parameter(model, layer + ".lora_A").value(), parameter(model, layer + ".lora_B").value(),
                    model.adapterScale());

            double[] change = backend.download(withAdapter);
            double[] base = backend.download(sparseOnly);
            double[] direct = new double[rows * dOut];
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < dOut; o++) {
                    double s = 0;
                    for (int j = 0; j < RANK; j++) {
                        double xa = 0;
                        for (int i = 0; i < dIn; i++) {
                            xa += x[r * dIn + i] * a[i * RANK + j];
                        }
                        s += xa * b[j * dOut + o];
                    }
                    direct[r * dOut + o] = s / RANK;
                    change[r * dOut + o] -= base[r * dOut + o];
                }
            }
            double err = relativeError(change, direct);
            assertTrue(err < 1e-12, "adapter path differs from (X·A)·B/r: normwise " + err);
        }
    }

    private static void trainOneStep(GptModel model, AdamW adamw) {
        GptConfig config = model.config();
        for (Parameter p : model.parameters()) {
            model.backend().zero(p.grad());
        }
        int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 8);
        model.forwardBackward(Windows.inputs(windows, config.seqLen()), Windows.targets(windows, config.seqLen()), B,
                1.0 / (B * config.seqLen()));
        adamw.step(model.parameters(), 1e-2);
        for (Parameter p : model.parameters()) {
            if (p.isSparse()) {
                model.backend().updateSparseOperands(p.sparse(), true);
            }
        }
    }

    static Parameter parameter(GptModel model, String name) {
        return model.parameters().stream().filter(p -> p.name().equals(name)).findFirst().orElseThrow();
    }
}
