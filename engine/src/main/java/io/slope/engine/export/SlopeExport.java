package io.slope.engine.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.checkpoint.Safetensors;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.data.TokenizerDescriptor;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptConfig.LinearKind;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The {@code slope/} export: the model in its sparse form, for tools that know N:M sparsity. Per
 * sparse layer the kept values, the static row mask and the current column mask (bit-packed, {@link MaskBits}); the
 * low-rank adapters as trained with their rank and scale; the dense parameters as they are; a manifest with the
 * config, pattern, tokenizer and every file's SHA-256. Layout in docs/formats.md.
 *
 * <p>Inputs are plain host arrays in our naming and PyTorch [out, in] layout, so callers need nothing but the data.
 */
public final class SlopeExport {
    public static final int FORMAT_VERSION = 1;
    public static final String MANIFEST = "manifest.json";
    public static final String DENSE_FILE = "dense.safetensors";
    public static final String SPARSE_FILE = "sparse.safetensors";
    public static final String ADAPTERS_FILE = "adapters.safetensors";
    /** Adapter keys: {@code <layer>.lora_A} (d_in × r) and {@code <layer>.lora_B} (r × d_out), e.g. h.0.mlp.c_fc. */
    public static final String LORA_A = ".lora_A";
    public static final String LORA_B = ".lora_B";
    static final String VALUES = ".values";
    static final String ROW_MASK = ".row_mask";
    static final String COLUMN_MASK = ".column_mask";

    private SlopeExport() {}

    /** What a {@code slope/} folder holds: the model's shape, its tokenizer and its whole state. */
    public record Contents(GptConfig config, TokenizerDescriptor tokenizer, ModelSnapshot snapshot) {
        /** The model for inference, adapters included when it has them. */
        public GptModel restoreModel(Backend backend, DType dtype) {
            return GptModel.restore(backend, config, dtype, snapshot, GptModel.Use.INFERENCE);
        }
    }

    /** A linear layer ({@code h.L.attn.c_attn}, …): its shape and whether it is sparse. */
    private record LinearLayer(String name, int dOut, int dIn, boolean sparse) {
        String weight() {
            return name + ".weight";
        }
    }

    /** Writes the export of a model's current state, adapters included. */
    public static void write(Path directory, GptModel model, Tokenizer tokenizer) throws IOException {
        write(directory, model.config(), tokenizer, model.snapshot());
    }

    /**
     * Writes the export into {@code directory}, which must not exist yet. Values are written in fp32.
     *
     * @param model the state to export ({@link GptModel#snapshot}, or a trained run's {@code FinalEvaluation.model()}):
     *     dense parameters as they are; sparse weights as their kept values, {@code dOut × dIn·N/M}, in the order of
     *     their row-kept indices (increasing along each row); the current column masks; adapters {@code
     *     <layer>.lora_A} (d_in × r) and {@code <layer>.lora_B} (r × d_out), one rank for all, with the factor on
     *     their path ({@code adapterScale}, 1/r as trained), or none
     */
    public static void write(Path directory, GptConfig config, Tokenizer tokenizer, ModelSnapshot model)
            throws IOException {
        Map<String, double[]> values = model.values();
        Map<String, int[]> rowKept = model.rowKept();
        Map<String, byte[]> columnMasks = model.columnMasks();
        Map<String, double[]> adapters = model.adapterRank() == 0 ? Map.of() : model.adapters();
        if (tokenizer.vocabSize() != config.vocab()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.vocabSize() + " tokens, the model "
                    + config.vocab());
        }
        Map<String, int[]> shapes = GptModel.parameterShapes(config);
        List<LinearLayer> layers = linearLayers(config);
        Set<String> sparseWeights = new LinkedHashSet<>();
        layers.stream().filter(LinearLayer::sparse).forEach(l -> sparseWeights.add(l.weight()));
        requireKeys("values", values.keySet(), shapes.keySet());
        requireKeys("rowKept", rowKept.keySet(), sparseWeights);
        requireKeys("columnMasks", columnMasks.keySet(), sparseWeights);

        List<NamedTensor> dense = new ArrayList<>();
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            if (!sparseWeights.contains(e.getKey())) {
                dense.add(f32(e.getKey(), values.get(e.getKey()), e.getValue()));
            }
        }
        List<NamedTensor> sparse = new ArrayList<>();
        NmPattern pattern = config.pattern();
        for (LinearLayer layer : layers) {
            if (!layer.sparse()) {
                continue;
            }
            String w = layer.weight();
            int kept = layer.dIn() / pattern.m() * pattern.n();
            byte[] rowMask = rowMask(w, rowKept.get(w), layer, pattern);
            byte[] columnMask = columnMasks.get(w);
            requireSubset(w, columnMask, rowMask, layer);
            long[] maskShape = {layer.dOut(), MaskBits.bytesPerRow(layer.dIn())};
            sparse.add(f32(w + VALUES, values.get(w), layer.dOut(), kept));
            sparse.add(NamedTensor.u8(w + ROW_MASK, maskShape, MaskBits.pack(rowMask, layer.dOut(), layer.dIn())));
            sparse.add(NamedTensor.u8(w + COLUMN_MASK, maskShape,
                    MaskBits.pack(columnMask, layer.dOut(), layer.dIn())));
        }
        int rank = adapterRank(adapters, layers);
        if (rank != model.adapterRank()) {
            throw new IllegalArgumentException("adapters have rank " + rank + ", the snapshot says "
                    + model.adapterRank());
        }
        List<NamedTensor> adapterTensors = new ArrayList<>();
        List<String> adapterLayers = new ArrayList<>();
        for (LinearLayer layer : layers) {
            if (adapters.containsKey(layer.name() + LORA_A)) {
                adapterLayers.add(layer.name());
                adapterTensors.add(f32(layer.name() + LORA_A, adapters.get(layer.name() + LORA_A), layer.dIn(), rank));
                adapterTensors.add(f32(layer.name() + LORA_B, adapters.get(layer.name() + LORA_B), rank, layer.dOut()));
            }
        }

        ExportFolder.publish(directory, staging -> {
            ObjectNode manifest = manifest(config, tokenizer, layers, rank, model.adapterScale(), adapterLayers);
            ArrayNode files = manifest.putArray("files");
            files.add(writeTensors(staging, DENSE_FILE, dense));
            if (!sparse.isEmpty()) {
                files.add(writeTensors(staging, SPARSE_FILE, sparse));
            }
            if (!adapterTensors.isEmpty()) {
                files.add(writeTensors(staging, ADAPTERS_FILE, adapterTensors));
            }
            ExportFolder.writeJson(staging.resolve(MANIFEST), manifest);
        });
    }

    /** Reads and verifies an export: format version, every file's size and SHA-256, every tensor's shape and masks. */
    public static Contents read(Path directory) throws IOException {
        Path manifestFile = directory.resolve(MANIFEST);
        JsonNode manifest;
        try {
            manifest = ExportFolder.JSON.readTree(Files.readAllBytes(manifestFile));
        } catch (NoSuchFileException e) {
            throw new InvalidExportException(manifestFile, "missing: " + directory + " is not a slope/ export");
        }
        int version = manifest.path("formatVersion").asInt(-1);
        if (version != FORMAT_VERSION) {
            throw new InvalidExportException(manifestFile, "format version " + version + " is not supported; this "
                    + "reader knows version " + FORMAT_VERSION);
        }
        GptConfig config = parseConfig(manifest, manifestFile);
        TokenizerDescriptor tokenizer = parseTokenizer(manifest.get("tokenizer"), manifestFile);
        Map<String, NamedTensor> tensors = new LinkedHashMap<>();
        for (JsonNode file : manifest.withArray("files")) {
            readVerified(directory, file, tensors);
        }
        Map<String, int[]> shapes = GptModel.parameterShapes(config);
        Map<String, double[]> values = new LinkedHashMap<>();
        Map<String, int[]> rowKept = new LinkedHashMap<>();
        Map<String, byte[]> columnMasks = new LinkedHashMap<>();
        List<LinearLayer> layers = linearLayers(config);
        Set<String> sparseWeights = new LinkedHashSet<>();
        layers.stream().filter(LinearLayer::sparse).forEach(l -> sparseWeights.add(l.weight()));
        NmPattern pattern = config.pattern();
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            String name = e.getKey();
            if (!sparseWeights.contains(name)) {
                values.put(name, tensor(tensors, directory, name, e.getValue()).toDoubles());
            }
        }
        for (LinearLayer layer : layers) {
            if (!layer.sparse()) {
                continue;
            }
            String w = layer.weight();
            int[] maskShape = {layer.dOut(), MaskBits.bytesPerRow(layer.dIn())};
            values.put(w, tensor(tensors, directory, w + VALUES, layer.dOut(),
                    layer.dIn() / pattern.m() * pattern.n()).toDoubles());
            try {
                byte[] rowMask = MaskBits.unpack(tensor(tensors, directory, w + ROW_MASK, maskShape).toBytes(),
                        layer.dOut(), layer.dIn());
                byte[] columnMask = MaskBits.unpack(tensor(tensors, directory, w + COLUMN_MASK, maskShape)
                        .toBytes(), layer.dOut(), layer.dIn());
                int[] kept = keptIndices(w, rowMask, layer, pattern);
                requireSubset(w, columnMask, rowMask, layer);
                rowKept.put(w, kept);
                columnMasks.put(w, columnMask);
            } catch (IllegalArgumentException e) {
                throw new InvalidExportException(directory.resolve(SPARSE_FILE), e.getMessage());
            }
        }
        Map<String, double[]> adapters = new LinkedHashMap<>();
        JsonNode adapterInfo = manifest.get("adapters");
        int rank = 0;
        double scale = 0;
        if (adapterInfo != null && !adapterInfo.isNull()) {
            rank = adapterInfo.get("rank").asInt();
            scale = adapterInfo.get("scale").asDouble();
            Set<String> withAdapters = new LinkedHashSet<>();
            adapterInfo.withArray("layers").forEach(n -> withAdapters.add(n.asText()));
            for (LinearLayer layer : layers) {
                if (withAdapters.remove(layer.name())) {
                    adapters.put(layer.name() + LORA_A, tensor(tensors, directory, layer.name() + LORA_A,
                            layer.dIn(), rank).toDoubles());
                    adapters.put(layer.name() + LORA_B, tensor(tensors, directory, layer.name() + LORA_B, rank,
                            layer.dOut()).toDoubles());
                }
            }
            if (!withAdapters.isEmpty()) {
                throw new InvalidExportException(manifestFile, "adapters on unknown layers " + withAdapters);
            }
        }
        if (!tensors.isEmpty()) {
            throw new InvalidExportException(directory, "tensors the manifest does not account for: "
                    + tensors.keySet());
        }
        return new Contents(config, tokenizer, new ModelSnapshot(values, rowKept, columnMasks, adapters, rank, scale));
    }

    private static List<LinearLayer> linearLayers(GptConfig config) {
        Map<String, int[]> shapes = GptModel.parameterShapes(config);
        List<LinearLayer> layers = new ArrayList<>();
        for (int l = 0; l < config.layers(); l++) {
            for (LinearKind kind : LinearKind.values()) {
                String name = kind.paramName(l);
                int[] shape = shapes.get(name + ".weight");
                layers.add(new LinearLayer(name, shape[0], shape[1], config.sparse(l, kind)));
            }
        }
        return layers;
    }

    /** The dense 0/1 row mask of kept indices; they must increase along each row, N per aligned group of M. */
    private static byte[] rowMask(String name, int[] kept, LinearLayer layer, NmPattern pattern) {
        int perRow = layer.dIn() / pattern.m() * pattern.n();
        if (kept.length != layer.dOut() * perRow) {
            throw new IllegalArgumentException("rowKept of " + name + ": " + kept.length + " indices, expected "
                    + layer.dOut() + "×" + perRow);
        }
        byte[] mask = new byte[layer.dOut() * layer.dIn()];
        for (int r = 0; r < layer.dOut(); r++) {
            int previous = -1;
            for (int j = 0; j < perRow; j++) {
                int c = kept[r * perRow + j];
                if (c <= previous || c >= layer.dIn()) {
                    throw new IllegalArgumentException("rowKept of " + name + ", row " + r + ": index " + c
                            + " is not increasing within [0, " + layer.dIn() + ")");
                }
                mask[r * layer.dIn() + c] = 1;
                previous = c;
            }
        }
        keptIndices(name, mask, layer, pattern); // checks N per group
        return mask;
    }

    /** The kept column indices of each row of a row mask, checking N kept in every aligned group of M. */
    private static int[] keptIndices(String name, byte[] mask, LinearLayer layer, NmPattern pattern) {
        int perRow = layer.dIn() / pattern.m() * pattern.n();
        int[] kept = new int[layer.dOut() * perRow];
        int next = 0;
        for (int r = 0; r < layer.dOut(); r++) {
            for (int g = 0; g < layer.dIn(); g += pattern.m()) {
                int inGroup = 0;
                for (int c = g; c < g + pattern.m(); c++) {
                    if (mask[r * layer.dIn() + c] == 1) {
                        kept[next++] = c;
                        inGroup++;
                    }
                }
                if (inGroup != pattern.n()) {
                    throw new IllegalArgumentException("row mask of " + name + ", row " + r + ": " + inGroup
                            + " kept in the group at column " + g + ", the pattern " + pattern + " keeps "
                            + pattern.n());
                }
            }
        }
        return kept;
    }

    /** The column mask only ever keeps entries of W^R. */
    private static void requireSubset(String name, byte[] columnMask, byte[] rowMask, LinearLayer layer) {
        if (columnMask.length != rowMask.length) {
            throw new IllegalArgumentException("column mask of " + name + ": " + columnMask.length + " entries, "
                    + "expected " + layer.dOut() + "×" + layer.dIn());
        }
        for (int i = 0; i < columnMask.length; i++) {
            if (columnMask[i] != 0 && (columnMask[i] != 1 || rowMask[i] != 1)) {
                throw new IllegalArgumentException("column mask of " + name + " keeps entry (" + i / layer.dIn()
                        + ", " + i % layer.dIn() + "), which the row mask prunes (or is not 0/1)");
            }
        }
    }

    /** The one rank r of all adapters (0 when there are none), after checking pairs and shapes. */
    private static int adapterRank(Map<String, double[]> adapters, List<LinearLayer> layers) {
        int rank = 0;
        Set<String> unclaimed = new LinkedHashSet<>(adapters.keySet());
        for (LinearLayer layer : layers) {
            double[] a = adapters.get(layer.name() + LORA_A);
            double[] b = adapters.get(layer.name() + LORA_B);
            if (a == null && b == null) {
                continue;
            }
            if (a == null || b == null) {
                throw new IllegalArgumentException("adapters of " + layer.name() + ": need both " + LORA_A + " and "
                        + LORA_B);
            }
            unclaimed.remove(layer.name() + LORA_A);
            unclaimed.remove(layer.name() + LORA_B);
            int r = a.length / layer.dIn();
            if (r < 1 || a.length != layer.dIn() * r || b.length != r * layer.dOut() || (rank != 0 && r != rank)) {
                throw new IllegalArgumentException("adapters of " + layer.name() + ": A has " + a.length + " and B "
                        + b.length + " values; expected " + layer.dIn() + "×r and r×" + layer.dOut() + " with one r"
                        + (rank != 0 ? " (" + rank + ")" : "") + " for all layers");
            }
            rank = r;
        }
        if (!unclaimed.isEmpty()) {
            throw new IllegalArgumentException("adapters for no linear layer of this model: " + unclaimed);
        }
        return rank;
    }

    private static ObjectNode manifest(GptConfig config, Tokenizer tokenizer, List<LinearLayer> layers, int rank,
            double scale, List<String> adapterLayers) {
        ObjectNode json = ExportFolder.JSON.createObjectNode();
        json.put("formatVersion", FORMAT_VERSION);
        ObjectNode c = json.putObject("config");
        c.put("layers", config.layers());
        c.put("heads", config.heads());
        c.put("dModel", config.dModel());
        c.put("seqLen", config.seqLen());
        c.put("vocab", config.vocab());
        c.put("mode", config.mode().wireName());
        c.put("denseFirstQkv", config.denseFirstQkv());
        json.putObject("pattern").put("n", config.pattern().n()).put("m", config.pattern().m());
        TokenizerDescriptor descriptor = Tokenizers.describe(tokenizer);
        ObjectNode t = json.putObject("tokenizer");
        t.put("kind", descriptor.kind());
        t.put("vocabSize", descriptor.vocabSize());
        if (descriptor.kind().equals("char")) {
            ArrayNode codePoints = t.putArray("codePoints");
            for (int cp : descriptor.charCodePoints()) {
                codePoints.add(cp);
            }
        }
        ArrayNode sparse = json.putArray("sparseLayers");
        for (LinearLayer layer : layers) {
            if (layer.sparse()) {
                sparse.addObject().put("name", layer.weight()).put("dOut", layer.dOut()).put("dIn", layer.dIn());
            }
        }
        if (rank == 0) {
            json.putNull("adapters");
        } else {
            ObjectNode a = json.putObject("adapters");
            a.put("rank", rank);
            a.put("scale", scale);
            ArrayNode names = a.putArray("layers");
            adapterLayers.forEach(names::add);
        }
        return json;
    }

    private static GptConfig parseConfig(JsonNode manifest, Path manifestFile) {
        JsonNode c = manifest.get("config");
        JsonNode p = manifest.get("pattern");
        try {
            return new GptConfig(c.get("layers").asInt(), c.get("heads").asInt(), c.get("dModel").asInt(),
                    c.get("seqLen").asInt(), c.get("vocab").asInt(), Mode.fromWire(c.get("mode").asText()),
                    new NmPattern(p.get("n").asInt(), p.get("m").asInt()), c.get("denseFirstQkv").asBoolean());
        } catch (RuntimeException e) {
            throw new InvalidExportException(manifestFile, "config or pattern unreadable: " + e.getMessage());
        }
    }

    private static TokenizerDescriptor parseTokenizer(JsonNode t, Path manifestFile) {
        try {
            JsonNode codePoints = t.get("codePoints");
            int[] cps = new int[codePoints == null ? 0 : codePoints.size()];
            for (int i = 0; i < cps.length; i++) {
                cps[i] = codePoints.get(i).asInt();
            }
            return new TokenizerDescriptor(t.get("kind").asText(), t.get("vocabSize").asInt(), cps);
        } catch (RuntimeException e) {
            throw new InvalidExportException(manifestFile, "tokenizer unreadable: " + e.getMessage());
        }
    }

    private static ObjectNode writeTensors(Path staging, String file, List<NamedTensor> tensors) throws IOException {
        Path path = staging.resolve(file);
        String sha256 = Safetensors.write(path, tensors, Map.of());
        ObjectNode entry = ExportFolder.JSON.createObjectNode();
        entry.put("file", file);
        entry.put("bytes", Files.size(path));
        entry.put("sha256", sha256);
        return entry;
    }

    /** Checks one listed file against its size and SHA-256, then adds its tensors. Only the known names are read. */
    private static void readVerified(Path directory, JsonNode entry, Map<String, NamedTensor> tensors)
            throws IOException {
        String name = entry.path("file").asText();
        if (!List.of(DENSE_FILE, SPARSE_FILE, ADAPTERS_FILE).contains(name)) {
            throw new InvalidExportException(directory.resolve(MANIFEST), "lists unknown file \"" + name + "\"");
        }
        Path file = directory.resolve(name);
        MessageDigest sha256 = DurableFiles.newSha256();
        long bytes;
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), sha256)) {
            bytes = in.transferTo(OutputStream.nullOutputStream());
        } catch (NoSuchFileException e) {
            throw new InvalidExportException(file, "missing");
        }
        String actual = HexFormat.of().formatHex(sha256.digest());
        if (bytes != entry.path("bytes").asLong() || !actual.equals(entry.path("sha256").asText())) {
            throw new InvalidExportException(file, bytes + " bytes with sha256 " + actual + "; the manifest lists "
                    + entry.path("bytes").asLong() + " bytes with sha256 " + entry.path("sha256").asText());
        }
        for (NamedTensor t : Safetensors.read(file).tensors()) {
            tensors.put(t.name(), t);
        }
    }

    /** Removes and returns the tensor, checking its shape. */
    private static NamedTensor tensor(Map<String, NamedTensor> tensors, Path directory, String name, int... shape) {
        NamedTensor t = tensors.remove(name);
        if (t == null) {
            throw new InvalidExportException(directory, "no tensor " + name);
        }
        if (!Arrays.equals(t.shape(), HfExport.longs(shape))) {
            throw new InvalidExportException(directory, "tensor " + name + " has shape "
                    + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(shape));
        }
        return t;
    }

    private static NamedTensor f32(String name, double[] values, int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        if (values.length != n) {
            throw new IllegalArgumentException(name + " needs " + n + " values, got " + values.length);
        }
        return NamedTensor.f32(name, HfExport.longs(shape), values);
    }

    private static void requireKeys(String what, Set<String> given, Set<String> expected) {
        if (!given.equals(expected)) {
            throw new IllegalArgumentException(what + " must hold exactly " + expected + "; got " + given);
        }
    }
}
