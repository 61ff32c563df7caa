package io.slope.engine.export;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.engine.data.CharTokenizer;
import io.slope.engine.data.Gpt2BpeTokenizer;
import io.slope.engine.data.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Hugging Face tokenizer files that encode text to exactly our ids. Both kinds get a {@code tokenizer.json} (the
 * {@code tokenizers} library's format, which {@code AutoTokenizer} loads as a fast tokenizer) and a {@code
 * tokenizer_config.json}; GPT-2 BPE also gets the classic {@code vocab.json} + {@code merges.txt}.
 */
final class HfTokenizerFiles {
    static final String TOKENIZER_JSON = "tokenizer.json";
    static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    static final String VOCAB_JSON = "vocab.json";
    static final String MERGES_TXT = "merges.txt";
    /** A token no character can be: a char vocabulary never holds it, so an unknown character is an error. */
    private static final String CHAR_UNKNOWN = "<unk>";

    private HfTokenizerFiles() {}

    /** Writes the tokenizer files into {@code directory}; {@code modelMaxLength} is the model's context. */
    static void write(Path directory, Tokenizer tokenizer, int modelMaxLength) throws IOException {
        switch (tokenizer) {
            case Gpt2BpeTokenizer gpt2 -> writeGpt2(directory, modelMaxLength);
            case CharTokenizer chars -> writeChar(directory, chars, modelMaxLength);
            default -> throw new IllegalArgumentException("no Hugging Face export for tokenizer " + tokenizer.kind());
        }
    }

    private static void writeGpt2(Path directory, int modelMaxLength) throws IOException {
        Gpt2BpeVocabulary bpe = Gpt2BpeVocabulary.instance();
        ObjectNode vocab = ExportFolder.JSON.createObjectNode();
        List<String> tokens = bpe.tokens();
        for (int id = 0; id < tokens.size(); id++) {
            vocab.put(tokens.get(id), id);
        }
        StringBuilder merges = new StringBuilder("#version: 0.2\n");
        ArrayNode mergeList = ExportFolder.JSON.createArrayNode();
        for (String[] pair : bpe.merges()) {
            merges.append(pair[0]).append(' ').append(pair[1]).append('\n');
            // Byte-level tokens never contain a space, so "left right" is unambiguous (and every version reads it).
            mergeList.add(pair[0] + " " + pair[1]);
        }
        ExportFolder.writeJson(directory.resolve(VOCAB_JSON), vocab);
        ExportFolder.writeText(directory.resolve(MERGES_TXT), merges.toString());

        // The layout of Hugging Face's own gpt2 tokenizer.json: byte-level pre-tokenizer (GPT-2's regex, no prefix
        // space), BPE without an unknown token, <|endoftext|> as the one special token.
        ObjectNode json = tokenizerJsonSkeleton();
        ObjectNode endOfText = json.withArray("added_tokens").addObject();
        endOfText.put("id", Gpt2BpeTokenizer.END_OF_TEXT);
        endOfText.put("content", Gpt2BpeVocabulary.END_OF_TEXT);
        endOfText.put("single_word", false).put("lstrip", false).put("rstrip", false);
        endOfText.put("normalized", true).put("special", true);
        json.set("pre_tokenizer", byteLevel(false, true));
        json.set("post_processor", byteLevel(true, false));
        json.set("decoder", byteLevel(true, true));
        ObjectNode model = json.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "").put("end_of_word_suffix", "");
        model.put("fuse_unk", false).put("byte_fallback", false);
        model.set("vocab", vocab);
        model.set("merges", mergeList);
        ExportFolder.writeJson(directory.resolve(TOKENIZER_JSON), json);

        ObjectNode config = tokenizerConfig("GPT2Tokenizer", modelMaxLength);
        config.put("bos_token", Gpt2BpeVocabulary.END_OF_TEXT);
        config.put("eos_token", Gpt2BpeVocabulary.END_OF_TEXT);
        config.put("unk_token", Gpt2BpeVocabulary.END_OF_TEXT);
        config.put("add_prefix_space", false);
        config.put("add_bos_token", false);
        ExportFolder.writeJson(directory.resolve(TOKENIZER_CONFIG), config);
    }

    /**
     * One token per Unicode code point: a pre-tokenizer that isolates every character, then a word-level lookup. The
     * decoder joins the tokens without spaces.
     */
    private static void writeChar(Path directory, CharTokenizer chars, int modelMaxLength) throws IOException {
        ObjectNode json = tokenizerJsonSkeleton();
        ObjectNode split = json.putObject("pre_tokenizer");
        split.put("type", "Split");
        // [\s\S]: any one character, newlines included ("." would skip them in the library's regex dialect).
        split.putObject("pattern").put("Regex", "[\\s\\S]");
        split.put("behavior", "Isolated");
        split.put("invert", false);
        json.putNull("post_processor");
        json.putObject("decoder").put("type", "Fuse");
        ObjectNode model = json.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode vocab = model.putObject("vocab");
        int[] codePoints = chars.codePoints();
        for (int id = 0; id < codePoints.length; id++) {
            vocab.put(Character.toString(codePoints[id]), id);
        }
        model.put("unk_token", CHAR_UNKNOWN);
        ExportFolder.writeJson(directory.resolve(TOKENIZER_JSON), json);
        ExportFolder.writeJson(directory.resolve(TOKENIZER_CONFIG),
                tokenizerConfig("PreTrainedTokenizerFast", modelMaxLength));
    }

    private static ObjectNode tokenizerJsonSkeleton() {
        ObjectNode json = ExportFolder.JSON.createObjectNode();
        json.put("version", "1.0");
        json.putNull("truncation");
        json.putNull("padding");
        json.putArray("added_tokens");
        json.putNull("normalizer");
        return json;
    }

    private static ObjectNode byteLevel(boolean addPrefixSpace, boolean trimOffsets) {
        ObjectNode node = ExportFolder.JSON.createObjectNode();
        node.put("type", "ByteLevel");
        node.put("add_prefix_space", addPrefixSpace);
        node.put("trim_offsets", trimOffsets);
        node.put("use_regex", true);
        return node;
    }

    /** Decoding must give back the text as it was: no clean-up of spaces before punctuation. */
    private static ObjectNode tokenizerConfig(String tokenizerClass, int modelMaxLength) {
        ObjectNode config = ExportFolder.JSON.createObjectNode();
        config.put("tokenizer_class", tokenizerClass);
        config.put("model_max_length", modelMaxLength);
        config.put("clean_up_tokenization_spaces", false);
        return config;
    }
}
