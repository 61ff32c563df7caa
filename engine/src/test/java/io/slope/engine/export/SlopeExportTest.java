package io.slope.engine.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.engine.PythonOracle;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.data.CharTokenizer;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.model.TinyModels;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The slope/ export: exact round trip, the documented layout read by independent code, verification on read. */
class SlopeExportTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int RANK = 4;
    private static final CharTokenizer CHARS = CharTokenizer.fromText("abcdefghijk\n");

    @TempDir
    Path dir;

    @Test
    void roundTripsExactlyAndRestoresAModelWithTheSameLoss() throws Exception {
        GptConfig config = config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(2);
                GptModel model = modelWithAdapters(backend, config)) {
            SlopeExport.write(dir.resolve("slope"), model, CHARS);
            SlopeExport.Contents read = SlopeExport.read(dir.resolve("slope"));
            ModelSnapshot expected = model.snapshot();
            ModelSnapshot actual = read.snapshot();

            assertEquals(config, read.config());
            assertEquals(Tokenizers.describe(CHARS), read.tokenizer());
            assertEquals(RANK, actual.adapterRank());
            assertEquals(1.0 / RANK, actual.adapterScale());
            assertSameArrays(expected.values(), actual.values());
            assertSameArrays(expected.adapters(), actual.adapters());
            assertEquals(expected.rowKept().keySet(), actual.rowKept().keySet());
            expected.rowKept().forEach((name, kept) -> assertArrayEquals(kept, actual.rowKept().get(name), name));
            assertEquals(expected.columnMasks().keySet(), actual.columnMasks().keySet());
            expected.columnMasks().forEach((name, m) -> assertArrayEquals(m, actual.columnMasks().get(name), name));

            int[] windows = TinyModels.randomWindows(4, config.seqLen(), config.vocab(), 9);
            try (GptModel restored = read.restoreModel(backend, DType.F32)) {
                assertTrue(restored.hasAdapters());
                assertEquals(loss(model, windows), loss(restored, windows), 0.0, "bit for bit, adapters included");
            }
        }
    }

    @Test
    void independentReaderOfTheDocumentedLayoutRebuildsTheMergedDenseExport() throws Exception {
        for (Mode mode : List.of(Mode.SLOPE, Mode.SPARSE_NO_DOUBLE_PRUNE)) {
            GptConfig config = config(mode);
            try (CpuBackend backend = new CpuBackend(2);
                    GptModel model = modelWithAdapters(backend, config)) {
                Path slope = dir.resolve(mode.wireName()).resolve("slope");
                Path hf = dir.resolve(mode.wireName()).resolve("hf");
                ModelSnapshot snapshot = model.snapshot();
                SlopeExport.write(slope, config, CHARS, snapshot);
                HfExport.write(hf, config, Merge.denseExport(config, snapshot), CHARS);

                JsonNode result = JSON.readTree(PythonOracle.run("slope_export_check.py", slope.toString(),
                        hf.toString()));
                assertEquals(GptModel.parameterShapes(config).size(), result.get("errors").size());
                assertEquals(2 * 4 - 1, result.get("sparse_layers").asInt(), "block 0's qkv stays dense");
                assertEquals(2 * 4 - 1, result.get("adapter_layers").asInt());
                // Both sides round the same doubles to fp32 at different points: a few fp32 ulps apart at most.
                result.get("errors").properties().forEach(e -> assertTrue(e.getValue().asDouble() < 1e-6,
                        mode + " " + e.getKey() + ": normwise error " + e.getValue()));
            }
        }
    }

    @Test
    void denseModelWithoutAdaptersHasOnlyDenseParameters() throws Exception {
        GptConfig config = config(Mode.DENSE);
        try (CpuBackend backend = new CpuBackend(2);
                GptModel model = model(backend, config)) {
            SlopeExport.write(dir.resolve("slope"), model, CHARS);
            try (var files = Files.list(dir.resolve("slope"))) {
                assertEquals(List.of("dense.safetensors", "manifest.json"),
                        files.map(p -> p.getFileName().toString()).sorted().toList());
            }
            ModelSnapshot read = SlopeExport.read(dir.resolve("slope")).snapshot();
            assertTrue(read.rowKept().isEmpty() && read.adapters().isEmpty());
            assertEquals(0, read.adapterRank());
            assertTrue(JSON.readTree(dir.resolve("slope").resolve(SlopeExport.MANIFEST).toFile()).get("adapters")
                    .isNull());
        }
    }

    @Test
    void readRefusesAFileThatDiffersFromTheManifest() throws Exception {
        GptConfig config = config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(2);
                GptModel model = modelWithAdapters(backend, config)) {
            SlopeExport.write(dir.resolve("slope"), model, CHARS);
        }
        Path sparse = dir.resolve("slope").resolve(SlopeExport.SPARSE_FILE);
        byte[] bytes = Files.readAllBytes(sparse);
        bytes[bytes.length - 1] ^= 1;
        Files.write(sparse, bytes);
        var e = assertThrows(InvalidExportException.class, () -> SlopeExport.read(dir.resolve("slope")));
        assertTrue(e.getMessage().contains(SlopeExport.SPARSE_FILE) && e.getMessage().contains("sha256"),
                e.getMessage());
    }

    @Test
    void writeRefusesMasksThatBreakThePatternAndAdaptersOfMixedRank() throws Exception {
        GptConfig config = config(Mode.SLOPE);
        try (CpuBackend backend = new CpuBackend(2);
                GptModel model = modelWithAdapters(backend, config)) {
            ModelSnapshot snapshot = model.snapshot();
            Map<String, int[]> rowKept = snapshot.rowKept();
            Map<String, byte[]> columnMasks = snapshot.columnMasks();
            String w = "h.1.mlp.c_fc.weight";
            int[] threeInAGroup = rowKept.get(w).clone();
            threeInAGroup[0] = 0;
            threeInAGroup[1] = 1;
            threeInAGroup[2] = 2; // row 0 keeps three of its first group of four
            var broken = new LinkedHashMap<>(rowKept);
            broken.put(w, threeInAGroup);
            var e = assertThrows(IllegalArgumentException.class, () -> SlopeExport.write(dir.resolve("a"), config,
                    CHARS, with(snapshot, broken, columnMasks, snapshot.adapters())));
            assertTrue(e.getMessage().contains(w), e.getMessage());

            byte[] outside = columnMasks.get(w).clone();
            int pruned = firstPruned(rowKept.get(w), config.dModel());
            outside[pruned] = 1;
            var widened = new LinkedHashMap<>(columnMasks);
            widened.put(w, outside);
            e = assertThrows(IllegalArgumentException.class, () -> SlopeExport.write(dir.resolve("b"), config, CHARS,
                    with(snapshot, rowKept, widened, snapshot.adapters())));
            assertTrue(e.getMessage().contains("row mask prunes"), e.getMessage());

            Map<String, double[]> mixed = new LinkedHashMap<>(snapshot.adapters());
            int C = config.dModel();
            mixed.put("h.1.attn.c_proj.lora_A", new double[C * 2]);
            mixed.put("h.1.attn.c_proj.lora_B", new double[2 * C]);
            e = assertThrows(IllegalArgumentException.class, () -> SlopeExport.write(dir.resolve("c"), config, CHARS,
                    with(snapshot, rowKept, columnMasks, mixed)));
            assertTrue(e.getMessage().contains("one r"), e.getMessage());
        }
    }

    /** A row mask's first pruned position (as a flat index) in row 0 of a weight with dIn columns. */
    private static int firstPruned(int[] rowKept, int dIn) {
        for (int c = 0; c < dIn; c++) {
            boolean kept = false;
            for (int j = 0; j < dIn / 2; j++) {
                kept |= rowKept[j] == c;
            }
            if (!kept) {
                return c;
            }
        }
        throw new AssertionError("2:4 prunes half of every row");
    }

    private static GptConfig config(Mode mode) {
        return new GptConfig(2, 2, 16, 8, CHARS.vocabSize(), mode, NmPattern.twoFour(), true);
    }

    private static GptModel model(Backend backend, GptConfig config) {
        return GptModel.fromDenseWeights(backend, config, DType.F32, TinyModels.trainedLookingWeights(config, 2, 0.1));
    }

    /** Trained-looking weights plus adapters on every sparse layer: A ~ N(0, 1) as initialised, B nonzero. */
    private static GptModel modelWithAdapters(Backend backend, GptConfig config) {
        GptModel model = model(backend, config);
        Map<String, double[]> adapters = new LinkedHashMap<>();
        GptModel.adapterShapes(config, RANK).forEach((name, shape) -> adapters.put(name,
                normal(shape[0] * shape[1], name.endsWith(SlopeExport.LORA_A) ? 1.0 : 0.05, name)));
        model.attachAdapters(adapters, RANK, 1.0 / RANK);
        return model;
    }

    private static ModelSnapshot with(ModelSnapshot s, Map<String, int[]> rowKept, Map<String, byte[]> columnMasks,
            Map<String, double[]> adapters) {
        return new ModelSnapshot(s.values(), rowKept, columnMasks, adapters, s.adapterRank(), s.adapterScale());
    }

    private static void assertSameArrays(Map<String, double[]> expected, Map<String, double[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        expected.forEach((name, values) -> assertArrayEquals(values, actual.get(name), name));
    }

    private static double loss(GptModel model, int[] windows) {
        int T = model.config().seqLen();
        int B = windows.length / (T + 1);
        model.forward(Windows.inputs(windows, T), Windows.targets(windows, T), B);
        return model.meanLoss(B);
    }

    private static double[] normal(int n, double std, String purpose) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = std * Philox.normal(17, Philox.stream("test/adapter/" + purpose), i);
        }
        return v;
    }

}
