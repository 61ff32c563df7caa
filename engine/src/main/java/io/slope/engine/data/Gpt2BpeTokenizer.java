package io.slope.engine.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;

/**
 * GPT-2's byte-level BPE (OpenAI's "gpt2" encoding, identical to tiktoken's r50k_base): 50,257 tokens, id 50256 being
 * {@code <|endoftext|>}. Backed by jtokkit, which ships the vocabulary, so nothing is downloaded.
 */
public final class Gpt2BpeTokenizer implements Tokenizer {
    public static final String KIND = "gpt2";
    public static final int VOCAB_SIZE = 50257;
    public static final int END_OF_TEXT = 50256;

    private static final Gpt2BpeTokenizer INSTANCE = new Gpt2BpeTokenizer();

    private final Encoding encoding = Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE);

    private Gpt2BpeTokenizer() {}

    /** The tokenizer is stateless and loading its vocabulary is costly, so there is one. */
    public static Gpt2BpeTokenizer instance() {
        return INSTANCE;
    }

    @Override
    public String kind() {
        return KIND;
    }

    @Override
    public int vocabSize() {
        return VOCAB_SIZE;
    }

    /**
     * Encodes {@code <|endoftext|>} appearing in the text as ordinary text (tiktoken's {@code encode_ordinary}), so
     * corpus content can never inject the document separator.
     */
    @Override
    public int[] encode(String text) {
        return encoding.encodeOrdinary(text).toArray();
    }

    /** Byte sequences that are not valid UTF-8 (a cut through a multi-byte character) decode to U+FFFD. */
    @Override
    public String decode(int[] ids) {
        IntArrayList list = new IntArrayList(ids.length);
        for (int id : ids) {
            if (id < 0 || id >= VOCAB_SIZE) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + VOCAB_SIZE
                        + ")");
            }
            list.add(id);
        }
        return encoding.decode(list);
    }

    /** {@code <|endoftext|>}, as in GPT-2's own training data. */
    @Override
    public int[] documentSeparator() {
        return new int[] {END_OF_TEXT};
    }
}
