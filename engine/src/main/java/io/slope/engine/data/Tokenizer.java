package io.slope.engine.data;

/** Text to token ids and back. Implementations are deterministic and thread-safe. */
public interface Tokenizer {
    /** "char" or "gpt2": the spec's {@code data.tokenizer} value. */
    String kind();

    int vocabSize();

    int[] encode(String text);

    String decode(int[] ids);

    /**
     * Whether text may be cut between these two adjacent characters and its pieces encoded on their own: true only
     * when, for any text around them, the tokens of the pieces joined are the tokens of the whole. Lets a document
     * of any length be encoded a piece at a time ({@link TextEncoder}).
     */
    boolean canSplitBetween(char before, char after);

    /**
     * The tokens placed between two documents of a corpus. Documents are encoded one by one and joined with these, so
     * that no token ever spans a document boundary.
     */
    int[] documentSeparator();
}
