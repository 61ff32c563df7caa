package io.slope.engine.data;

import java.util.Arrays;

/**
 * All that is needed to rebuild a tokenizer without the corpus: its kind, vocabulary size and, for "char", the
 * vocabulary itself (sorted code points). Stored in every token shard's header.
 */
public record TokenizerDescriptor(String kind, int vocabSize, int[] charCodePoints) {
    public TokenizerDescriptor {
        switch (kind) {
            case "char" -> {
                if (charCodePoints.length != vocabSize) {
                    throw new IllegalArgumentException("a char vocabulary of size " + vocabSize + " needs "
                            + vocabSize + " code points, got " + charCodePoints.length);
                }
            }
            case Gpt2BpeTokenizer.KIND -> {
                if (vocabSize != Gpt2BpeTokenizer.VOCAB_SIZE || charCodePoints.length != 0) {
                    throw new IllegalArgumentException("gpt2 has vocabulary size " + Gpt2BpeTokenizer.VOCAB_SIZE
                            + " and no code point list, got " + vocabSize + " and " + charCodePoints.length);
                }
            }
            default -> throw new IllegalArgumentException("unknown tokenizer kind \"" + kind + "\"; known: "
                    + Tokenizers.KINDS);
        }
        charCodePoints = charCodePoints.clone();
    }

    @Override
    public int[] charCodePoints() {
        return charCodePoints.clone();
    }

    /** Content equality (a record's generated equals would compare the arrays by identity). */
    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizerDescriptor other && kind.equals(other.kind) && vocabSize == other.vocabSize
                && Arrays.equals(charCodePoints, other.charCodePoints);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * kind.hashCode() + vocabSize) + Arrays.hashCode(charCodePoints);
    }

    @Override
    public String toString() {
        return kind + " (vocabulary " + vocabSize + ")";
    }
}
