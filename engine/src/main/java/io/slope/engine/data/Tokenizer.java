package io.slope.engine.data;

/** Text to token ids and back. Implementations are deterministic and thread-safe. */
public interface Tokenizer {
    /** "char" or "gpt2": the spec's {@code data.tokenizer} value. */
    String kind();

    int vocabSize();

    int[] encode(String text);

    String decode(int[] ids);

    /**
     * The tokens placed between two documents of a corpus. Documents are encoded one by one and joined with these, so
     * that no token ever spans a document boundary.
     */
    int[] documentSeparator();
}
