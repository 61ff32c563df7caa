package io.slope.engine.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import io.slope.spec.RunSpecs;

/**
 * GPT-2's byte-level BPE (OpenAI's "gpt2" encoding, identical to tiktoken's r50k_base): 50,257 tokens, id 50256 being
 * {@code <|endoftext|>}. Backed by jtokkit, which ships the vocabulary, so nothing is downloaded.
 */
public final class Gpt2BpeTokenizer implements Tokenizer {
    public static final String KIND = "gpt2";
    public static final int VOCAB_SIZE = RunSpecs.GPT2_VOCAB_SIZE;
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

    /**
     * Where GPT-2's pre-tokenizer certainly starts a new piece whatever surrounds the two characters. It cuts text with
     * {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+} (Unicode white space)
     * and encodes each match on its own. The pattern has no look-behind, so the matches from a position on depend only
     * on the text from there. When {@code before} is not white space and a match ends after it, that match took no
     * part of {@code \s+(?!\S)}, the only construct that could behave differently at the end of a piece of text than
     * before the next character; so the text up to there encodes on its own as in the whole. A match ends after a
     * non-space {@code before} when {@code after} is white space (only the leading ' ' of a match is optional, and it
     * starts one), or when the two are of different classes among letter, number and other, apostrophes aside (a
     * contraction joins an apostrophe to letters). Surrogates, and characters that are white space by any of Java's
     * definitions, are never split next to, so that nothing hangs on a detail of the regex flags.
     */
    @Override
    public boolean canSplitBetween(char before, char after) {
        if (Character.isSurrogate(before) || Character.isSurrogate(after) || anyWhiteSpace(before)) {
            return false;
        }
        if (after == ' ' || after == '\n') {
            return true;
        }
        if (anyWhiteSpace(after) || before == '\'' || after == '\'') {
            return false;
        }
        return pieceClass(before) != pieceClass(after);
    }

    private static boolean anyWhiteSpace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u0085' || c == '\u180E'
                || c == '\u200B' || c == '\uFEFF';
    }

    /** 0 letter ({@code \p{L}}), 1 number ({@code \p{N}}), 2 anything else. */
    private static int pieceClass(char c) {
        if (Character.isLetter(c)) {
            return 0;
        }
        return switch (Character.getType(c)) {
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> 1;
            default -> 2;
        };
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
