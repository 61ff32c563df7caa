package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class RunSpecDefaultsTest {

    @Test
    void minimalSpecResolvesToTheDocumentedDefaults() {
        ResolvedSpec expected = new ResolvedSpec("run",
                new ResolvedSpec.Model(Preset.TINY, 2, 4, 64, 64),
                new ResolvedSpec.Sparsity(Mode.SLOPE, 2, 4, 1, true),
                new ResolvedSpec.Adapters(0.99, 4),
                new ResolvedSpec.Optimizer(6e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 10, 0.0),
                new ResolvedSpec.Training(1000, 8, 1, 1234L),
                new ResolvedSpec.Data(List.of("corpus.txt"), List.of(), "char", 0.1),
                new ResolvedSpec.Eval(250, 0),
                500, BackendChoice.AUTO, Precision.FP32, 0);

        assertEquals(expected, Specs.resolved(""));
    }

    @ParameterizedTest(name = "{0}: {1} layers, {2} heads, dModel {3}, seqLen {4}, adapter rank {5}")
    @CsvSource({
        "tiny,         2,  4,   64,   64,  4",
        "mini,         4,  4,  128,  128,  4",
        "char-small,   6,  6,  384,  256,  8",
        "gpt2-small,  12, 12,  768, 1024, 12",
        "gpt2-medium, 24, 16, 1024, 1024, 16",
        "gpt2-large,  36, 20, 1280, 1024, 20",
        "gpt2-xl,     48, 25, 1600, 1024, 24",
    })
    void everyPresetResolvesToItsShape(String preset, int layers, int heads, int dModel, int seqLen, int rank) {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"" + preset + "\"}");

        assertEquals(new ResolvedSpec.Model(Preset.fromWire(preset), layers, heads, dModel, seqLen), spec.model());
        assertEquals(rank, spec.adapters().rank());
    }

    @Test
    void presetCoversEveryEnumConstant() {
        assertEquals(List.of("tiny", "mini", "char-small", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"),
                Preset.wireNames());
    }

    @Test
    void explicitShapeFieldsOverrideThePreset() {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"gpt2-small\", \"layers\": 2, \"seqLen\": 128}");

        assertEquals(new ResolvedSpec.Model(Preset.GPT2_SMALL, 2, 12, 768, 128), spec.model());
    }

    @Test
    void adapterRankDefaultFollowsAnOverriddenDModel() {
        ResolvedSpec spec =
                Specs.resolved("\"model\": {\"dModel\": 1600, \"heads\": 25}, \"sparsity\": {\"mode\": \"dense\"}");

        assertEquals(24, spec.adapters().rank());
    }

    @ParameterizedTest(name = "steps {0} -> warmup {1}")
    @CsvSource({"1, 0", "99, 0", "100, 1", "250, 2", "1000, 10", "123456, 1234"})
    void warmupDefaultsToOnePercentOfStepsRoundedDown(int steps, int warmup) {
        ResolvedSpec spec = Specs.resolved("\"training\": {\"steps\": " + steps + "}");

        assertEquals(warmup, spec.optimizer().warmupSteps());
    }

    @Test
    void explicitValuesAreKept() {
        ResolvedSpec spec = Specs.resolved("""
                "name": "exp-1", "sparsity": {"mode": "sparse-no-double-prune", "n": 1, "m": 2,
                "columnMaskRefresh": 100, "denseFirstQkv": false}, "adapters": {"start": 1, "rank": 8},
                "optimizer": {"lr": 0.001, "warmupSteps": 0, "minLrRatio": 0.1},
                "training": {"steps": 20, "batchSize": 2, "gradAccum": 4, "seed": -7},
                "eval": {"every": 0, "maxWindows": 16}, "checkpointEvery": 0, "backend": "cpu",
                "precision": "fp64", "threads": 3""");

        assertEquals(new ResolvedSpec.Sparsity(Mode.SPARSE_NO_DOUBLE_PRUNE, 1, 2, 100, false), spec.sparsity());
        assertEquals(new ResolvedSpec.Adapters(1.0, 8), spec.adapters());
        assertEquals(new ResolvedSpec.Optimizer(0.001, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.1), spec.optimizer());
        assertEquals(new ResolvedSpec.Training(20, 2, 4, -7L), spec.training());
        assertEquals(new ResolvedSpec.Eval(0, 16), spec.eval());
        assertEquals(List.of("exp-1", 0, BackendChoice.CPU, Precision.FP64, 3),
                List.of(spec.name(), spec.checkpointEvery(), spec.backend(), spec.precision(), spec.threads()));
    }
}
