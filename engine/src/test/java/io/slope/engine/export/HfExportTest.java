package io.slope.engine.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.engine.PythonOracle;
import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.checkpoint.Safetensors;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.data.CharTokenizer;
import io.slope.engine.data.Gpt2BpeTokenizer;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
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

/**
 * The hf/ export loads in an independent GPT-2 forward written to Hugging Face's conventions (hf_gpt2_check.py) and
 * reproduces our loss, and its tokenizer files encode text to our ids, for both tokenizers.
 */
class HfExportTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int WINDOWS = 8;
    private static final int ADAPTER_RANK = 4;
    /** docs/method.md, merge: the export reproduces our validation loss within 1e-4 (relative). */
    private static final double LOSS_TOLERANCE = 1e-4;

    /** Characters that stress the tokenizer pipeline: whitespace of every kind, regex and JSON specials, non-BMP. */
    private static final String CHAR_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
            + "All:\tSpeak, speak.\r\n<unk> [\\s\\S] \"quoted\" Ġ café 😀 {x}|$^.*";
    /** Without a literal "<|endoftext|>": Hugging Face reads that as the special token, we as text (see below). */
    private static final String GPT2_TEXT = "Hello world! It's 2024 — naïve café 😀\n\n  spaces   and\ttabs they'll "
            + "we've <|endoftext| > 3.14159";

    @TempDir
    Path dir;

    @Test
    void charModelExportReproducesOurLossAndIdsInAnIndependentHuggingFaceForward() throws Exception {
        CharTokenizer chars = CharTokenizer.fromText(CHAR_TEXT);
        checkAgainstIndependentForward(chars, CHAR_TEXT);
    }

    @Test
    void gpt2ModelExportReproducesOurLossAndIdsAndOpenAisVocabularyFiles() throws Exception {
        JsonNode result = checkAgainstIndependentForward(Gpt2BpeTokenizer.instance(), GPT2_TEXT);
        assertArrayEquals(Gpt2BpeTokenizer.instance().encode(GPT2_TEXT), ints(result.get("vocab_merges_ids")),
                "vocab.json + merges.txt, loaded as GPT2TokenizerFast builds them");
        assertTrue(result.get("vocab_matches_openai").asBoolean(), "vocab.json equals OpenAI's encoder.json");
        assertTrue(result.get("merges_match_openai").asBoolean(), "merges.txt equals OpenAI's vocab.bpe byte for byte");
        // As in Hugging Face's own gpt2 files, a literal <|endoftext|> is the special token (docs/formats.md).
        assertArrayEquals(new int[] {Gpt2BpeTokenizer.END_OF_TEXT}, ints(result.get("end_of_text_ids")));
    }

    /**
     * Exports a sparse model with trained-looking weights and adapters (merged, as a run's final export), runs
     * hf_gpt2_check.py, and compares loss and token ids.
     */
    private JsonNode checkAgainstIndependentForward(Tokenizer tokenizer, String sampleText) throws Exception {
        GptConfig config = config(tokenizer.vocabSize());
        int T = config.seqLen();
        int[] windows = TinyModels.randomWindows(WINDOWS, T, config.vocab(), 11);
        double ourLoss;
        Map<String, double[]> dense;
        try (CpuBackend backend = new CpuBackend(2);
                GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32,
                        TinyModels.trainedLookingWeights(config, 5, 0.5))) {
            // The final model of a run: sparse weights plus trained (nonzero) adapters, exported merged.
            Map<String, double[]> adapters = GptModel.initialAdapterWeights(config, ADAPTER_RANK, 6);
            adapters.forEach((name, w) -> {
                for (int i = 0; name.endsWith(".lora_B") && i < w.length; i++) {
                    w[i] = 0.05 * Philox.normal(6, Philox.stream("test/" + name), i);
                }
            });
            model.attachAdapters(adapters, ADAPTER_RANK, 1.0 / ADAPTER_RANK);
            model.forward(Windows.inputs(windows, T), Windows.targets(windows, T), WINDOWS);
            ourLoss = model.meanLoss(WINDOWS);
            dense = Merge.denseExport(config, model.snapshot());
        }
        Path hf = dir.resolve("hf");
        HfExport.write(hf, config, dense, tokenizer);

        Path caseFile = dir.resolve("case.json");
        var caseJson = JSON.createObjectNode();
        var rows = caseJson.putArray("windows");
        for (int w = 0; w < WINDOWS; w++) {
            var row = rows.addArray();
            for (int i = 0; i < T + 1; i++) {
                row.add(windows[w * (T + 1) + i]);
            }
        }
        caseJson.put("sample_text", sampleText);
        JSON.writeValue(caseFile.toFile(), caseJson);

        JsonNode result = JSON.readTree(PythonOracle.run("hf_gpt2_check.py", hf.toString(), caseFile.toString()));
        double theirLoss = result.get("loss").asDouble();
        double error = Math.abs(theirLoss - ourLoss) / Math.abs(ourLoss);
        assertTrue(error < LOSS_TOLERANCE, "Hugging Face-convention loss " + theirLoss + " vs ours " + ourLoss
                + ": relative error " + error);
        assertArrayEquals(tokenizer.encode(sampleText), ints(result.get("tokenizer_json_ids")), "tokenizer.json ids");
        assertEquals(sampleText, result.get("tokenizer_json_decoded").asText(), "tokenizer.json decodes back");
        return result;
    }

    @Test
    void linearWeightsAreTransposedToConv1dUnderGpt2NamesAndTheTiedHeadIsLeftOut() throws Exception {
        GptConfig config = config(11);
        Map<String, double[]> weights = TinyModels.trainedLookingWeights(config, 3, 0.1);
        HfExport.write(dir.resolve("hf"), config, weights, new CharTokenizer(codePoints(11)));

        Map<String, NamedTensor> written = new LinkedHashMap<>();
        Safetensors.Contents contents = Safetensors.read(dir.resolve("hf").resolve(HfExport.WEIGHTS));
        contents.tensors().forEach(t -> written.put(t.name(), t));
        assertEquals(Map.of("format", "pt"), contents.metadata());
        assertEquals(GptModel.parameterShapes(config).size(), written.size());
        assertFalse(written.containsKey("lm_head.weight"));

        int C = config.dModel();
        NamedTensor fc = written.get("transformer.h.1.mlp.c_fc.weight");
        assertArrayEquals(new long[] {C, 4 * C}, fc.shape(), "Conv1D [in, out]");
        double[] ours = weights.get("h.1.mlp.c_fc.weight"); // [4C, C]
        double[] theirs = fc.toDoubles();
        for (int out = 0; out < 4 * C; out++) {
            for (int in = 0; in < C; in++) {
                assertEquals((float) ours[out * C + in], theirs[in * 4 * C + out], "c_fc[" + out + "][" + in + "]");
            }
        }
        NamedTensor wte = written.get("transformer.wte.weight");
        assertArrayEquals(new long[] {config.vocab(), C}, wte.shape(), "embeddings keep [vocab, C]");
        assertArrayEquals(floats(weights.get("wte")), wte.toDoubles());
        assertArrayEquals(floats(weights.get("h.0.ln_2.bias")), written.get("transformer.h.0.ln_2.bias").toDoubles());
    }

    @Test
    void configDescribesTheModelAsGpt2WithTiedHeadAndTanhGelu() throws Exception {
        GptConfig config = config(Gpt2BpeTokenizer.VOCAB_SIZE);
        HfExport.write(dir.resolve("hf"), config, GptModel.initialWeights(config, 1), Gpt2BpeTokenizer.instance());
        JsonNode json = JSON.readTree(dir.resolve("hf").resolve(HfExport.CONFIG_JSON).toFile());
        assertEquals("GPT2LMHeadModel", json.at("/architectures/0").asText());
        assertEquals(config.dModel(), json.get("n_embd").asInt());
        assertEquals(config.layers(), json.get("n_layer").asInt());
        assertEquals(config.heads(), json.get("n_head").asInt());
        assertEquals(config.seqLen(), json.get("n_positions").asInt());
        assertEquals(config.vocab(), json.get("vocab_size").asInt());
        assertEquals(4 * config.dModel(), json.get("n_inner").asInt());
        assertEquals("gelu_new", json.get("activation_function").asText());
        assertEquals(1e-5, json.get("layer_norm_epsilon").asDouble());
        assertTrue(json.get("tie_word_embeddings").asBoolean());
        assertEquals(Gpt2BpeTokenizer.END_OF_TEXT, json.get("eos_token_id").asInt());
        assertEquals(Gpt2BpeTokenizer.END_OF_TEXT, json.get("bos_token_id").asInt());
        assertEquals(List.of("config.json", "merges.txt", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json", "vocab.json"), fileNames(dir.resolve("hf")));
    }

    @Test
    void refusesAnExistingFolderAndIncompleteWeights() throws Exception {
        GptConfig config = config(11);
        Map<String, double[]> weights = GptModel.initialWeights(config, 1);
        CharTokenizer chars = new CharTokenizer(codePoints(11));
        Files.createDirectories(dir.resolve("taken"));
        var taken = assertThrows(IllegalArgumentException.class,
                () -> HfExport.write(dir.resolve("taken"), config, weights, chars));
        assertTrue(taken.getMessage().contains("already exists"), taken.getMessage());

        weights.remove("h.1.ln_1.bias");
        var missing = assertThrows(IllegalArgumentException.class,
                () -> HfExport.write(dir.resolve("hf"), config, weights, chars));
        assertTrue(missing.getMessage().contains("exactly the model's parameters"), missing.getMessage());
        assertFalse(Files.exists(dir.resolve("hf")));
    }

    /** Two blocks, sparse (block 0's qkv dense), big enough for four heads' worth of attention patterns. */
    private static GptConfig config(int vocab) {
        return new GptConfig(2, 2, 16, 16, vocab, Mode.SLOPE, NmPattern.twoFour(), true);
    }

    private static int[] codePoints(int n) {
        int[] cps = new int[n];
        for (int i = 0; i < n; i++) {
            cps[i] = 'a' + i;
        }
        return cps;
    }

    /** Rounded to fp32, as the export stores them. */
    private static double[] floats(double[] values) {
        return NamedTensor.f32("rounded", new long[] {values.length}, values).toDoubles();
    }

    private static int[] ints(JsonNode array) {
        return JSON.convertValue(array, int[].class);
    }

    private static List<String> fileNames(Path folder) throws Exception {
        try (var files = Files.list(folder)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
