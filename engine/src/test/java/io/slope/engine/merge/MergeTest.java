package io.slope.engine.merge;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.engine.train.AdamW;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import org.junit.jupiter.api.Test;

/** The dense export computes the trained model; the inference form differs only by pruning A. */
class MergeTest {
    private static final int B = 2;
    private static final int RANK = 4;

    @Test
    void denseExportAgreesWithTheTrainedModelWithin1e4InFp32() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel trained = trainedWithAdapters(backend, config);
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 21);
            double[] expected = logits(trained, windows);

            ModelSnapshot snapshot = trained.snapshot();
            GptModel dense = GptModel.fromDenseWeights(backend, Merge.denseConfig(config), DType.F32,
                    Merge.denseExport(config, snapshot));
            double err = relativeError(logits(dense, windows), expected);
            assertTrue(err < 1e-4, "dense export vs trained model: normwise " + err);
            assertTrue(err > 0 || expected.length == 0, "fp32 rounding should show, or the export ignored nothing");
        }
    }

    @Test
    void inferenceFormPrunesAAlongDInFoldsTheScaleIntoBAndChangesTheOutputMeasurably() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel trained = trainedWithAdapters(backend, config);
            ModelSnapshot snapshot = trained.snapshot();
            ModelSnapshot inference = Merge.inferenceForm(config, snapshot);
            assertEquals(1.0, inference.adapterScale());
            for (String name : snapshot.adapters().keySet()) {
                double[] original = snapshot.adapters().get(name);
                double[] merged = inference.adapters().get(name);
                if (name.endsWith(".lora_B")) {
                    for (int i = 0; i < original.length; i++) {
                        assertEquals(original[i] / RANK, merged[i], 1e-7 * Math.abs(original[i]), name);
                    }
                } else {
                    assertTwoOfEveryFourAlongDInKept(name, original, merged);
                }
            }
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 21);
            double[] expected = logits(trained, windows);
            GptModel inferenceModel = GptModel.restore(backend, config, DType.F32, inference);
            double err = relativeError(logits(inferenceModel, windows), expected);
            assertTrue(err > 1e-6 && err < 0.5, "pruning A should change the output a little: normwise " + err);
        }
    }

    @Test
    void withoutAdaptersTheInferenceFormIsTheModelItself() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(1)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, GptModel.initialWeights(config, 2));
            ModelSnapshot snapshot = model.snapshot();
            assertSame(snapshot, Merge.inferenceForm(config, snapshot));
        }
    }

    /** In every column of A (a row of Aᵀ), each group of 4 consecutive d_in entries keeps its 2 largest, unchanged. */
    private static void assertTwoOfEveryFourAlongDInKept(String name, double[] a, double[] pruned) {
        int dIn = a.length / RANK;
        for (int j = 0; j < RANK; j++) {
            for (int g = 0; g < dIn; g += 4) {
                int kept = 0;
                for (int i = g; i < g + 4; i++) {
                    double v = pruned[i * RANK + j];
                    if (v != 0) {
                        kept++;
                        assertEquals(a[i * RANK + j], v, name);
                        for (int other = g; other < g + 4; other++) {
                            if (pruned[other * RANK + j] == 0) {
                                assertTrue(Math.abs(a[other * RANK + j]) <= Math.abs(v), name + " kept a smaller one");
                            }
                        }
                    }
                }
                assertEquals(2, kept, name + " column " + j + " group " + g);
            }
        }
    }

    /** A slope model trained 3 steps, then 3 more with adapters, so A, B and the sparse weights all moved. */
    private static GptModel trainedWithAdapters(CpuBackend backend, GptConfig config) {
        GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, GptModel.initialWeights(config, 4));
        AdamW adamw = new AdamW(backend, new ResolvedSpec.Optimizer(3e-2, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0));
        for (int step = 0; step < 6; step++) {
            if (step == 3) {
                model.attachAdapters(GptModel.initialAdapterWeights(config, RANK, 4), RANK, 1.0 / RANK);
            }
            for (Parameter p : model.parameters()) {
                backend.zero(p.grad());
            }
            int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 100 + step);
            model.forwardBackward(Windows.inputs(windows, config.seqLen()), Windows.targets(windows, config.seqLen()),
                    B, 1.0 / (B * config.seqLen()));
            adamw.step(model.parameters(), 3e-2);
            for (Parameter p : model.parameters()) {
                if (p.isSparse()) {
                    backend.updateSparseOperands(p.sparse(), true);
                }
            }
        }
        return model;
    }

    private static double[] logits(GptModel model, int[] windows) {
        int T = model.config().seqLen();
        model.forward(Windows.inputs(windows, T), Windows.targets(windows, T), B);
        return model.logits(B);
    }
}
