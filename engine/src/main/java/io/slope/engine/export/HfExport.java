package io.slope.engine.export;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.checkpoint.Safetensors;
import io.slope.engine.data.Gpt2BpeTokenizer;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The {@code hf/} export (docs/formats.md): a dense model that Hugging Face's {@code GPT2LMHeadModel} and {@code
 * AutoTokenizer} load with {@code from_pretrained}. Layout in docs/formats.md.
 *
 * <p>Weights are written in fp32 under GPT-2's names; linear weights are transposed from our PyTorch Linear layout
 * [out, in] to GPT-2's Conv1D layout [in, out]. The head is tied to {@code transformer.wte.weight} and, as Hugging Face
 * saves it, not written.
 */
public final class HfExport {
    public static final String CONFIG_JSON = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    static final double LAYER_NORM_EPSILON = 1e-5;

    private HfExport() {}

    /**
     * Writes the export into {@code directory}, which must not exist yet.
     *
     * @param dense every parameter of {@link GptModel#parameterShapes} as a dense array in our naming and layout
     *     (e.g. {@link GptModel#denseWeights()}, or the merged W^R + (A·B/r)ᵀ of a model with adapters)
     */
    public static void write(Path directory, GptConfig config, Map<String, double[]> dense, Tokenizer tokenizer)
            throws IOException {
        if (tokenizer.vocabSize() != config.vocab()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.vocabSize() + " tokens, the model "
                    + config.vocab());
        }
        List<NamedTensor> tensors = hfTensors(config, dense);
        ExportFolder.publish(directory, staging -> {
            // transformers refuses safetensors files whose metadata does not name their framework.
            Safetensors.write(staging.resolve(WEIGHTS), tensors, Map.of("format", "pt"));
            ExportFolder.writeJson(staging.resolve(CONFIG_JSON), config(config, tokenizer));
            HfTokenizerFiles.write(staging, tokenizer, config.seqLen());
        });
    }

    /** Our parameter name as Hugging Face's GPT2LMHeadModel names it. */
    static String hfName(String ours) {
        return switch (ours) {
            case "wte", "wpe" -> "transformer." + ours + ".weight";
            default -> "transformer." + ours;
        };
    }

    private static List<NamedTensor> hfTensors(GptConfig config, Map<String, double[]> dense) {
        Map<String, int[]> shapes = GptModel.parameterShapes(config);
        if (!shapes.keySet().equals(dense.keySet())) {
            throw new IllegalArgumentException("dense weights must hold exactly the model's parameters " + shapes
                    .keySet() + "; got " + dense.keySet());
        }
        List<NamedTensor> tensors = new ArrayList<>(shapes.size());
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            String name = e.getKey();
            int[] shape = e.getValue();
            double[] values = dense.get(name);
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            if (values.length != n) {
                throw new IllegalArgumentException("parameter " + name + " needs " + n + " values, got "
                        + values.length);
            }
            // Inside a block every matrix is a linear layer's weight; wte and wpe keep their [rows, C] layout.
            boolean conv1d = shape.length == 2 && name.startsWith("h.");
            if (conv1d) {
                tensors.add(NamedTensor.f32(hfName(name), new long[] {shape[1], shape[0]},
                        transpose(values, shape[0], shape[1])));
            } else {
                tensors.add(NamedTensor.f32(hfName(name), longs(shape), values));
            }
        }
        return tensors;
    }

    /** [rows, cols] row-major to [cols, rows] row-major. */
    static double[] transpose(double[] w, int rows, int cols) {
        double[] t = new double[w.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = w[r * cols + c];
            }
        }
        return t;
    }

    /** GPT-2's config with our shape; dropout 0 because training used none; tanh GELU is "gelu_new". */
    private static ObjectNode config(GptConfig config, Tokenizer tokenizer) {
        ObjectNode json = ExportFolder.JSON.createObjectNode();
        json.putArray("architectures").add("GPT2LMHeadModel");
        json.put("model_type", "gpt2");
        json.put("vocab_size", config.vocab());
        json.put("n_positions", config.seqLen());
        json.put("n_ctx", config.seqLen());
        json.put("n_embd", config.dModel());
        json.put("n_layer", config.layers());
        json.put("n_head", config.heads());
        json.put("n_inner", 4 * config.dModel());
        json.put("activation_function", "gelu_new");
        json.put("layer_norm_epsilon", LAYER_NORM_EPSILON);
        json.put("resid_pdrop", 0.0);
        json.put("embd_pdrop", 0.0);
        json.put("attn_pdrop", 0.0);
        json.put("initializer_range", 0.02);
        json.put("scale_attn_weights", true);
        json.put("scale_attn_by_inverse_layer_idx", false);
        json.put("reorder_and_upcast_attn", false);
        json.put("tie_word_embeddings", true);
        json.put("use_cache", true);
        json.put("torch_dtype", "float32");
        // GPT-2 BPE ends documents with <|endoftext|>; a char vocabulary has no such token (documents are separated
        // by a blank line, two tokens), so it names none.
        if (tokenizer instanceof Gpt2BpeTokenizer) {
            json.put("bos_token_id", Gpt2BpeTokenizer.END_OF_TEXT);
            json.put("eos_token_id", Gpt2BpeTokenizer.END_OF_TEXT);
        } else {
            json.putNull("bos_token_id");
            json.putNull("eos_token_id");
        }
        return json;
    }

    static long[] longs(int[] shape) {
        long[] l = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            l[i] = shape[i];
        }
        return l;
    }
}
