package io.slope.engine.data;

import java.util.List;

/** Makes tokenizers by kind, and describes them so that they can be rebuilt later without the corpus. */
public final class Tokenizers {
    public static final List<String> KINDS = List.of("char", Gpt2BpeTokenizer.KIND);

    private Tokenizers() {}

    /**
     * The tokenizer of {@code kind} for these corpora (the training text and any held-out files). "char" takes its
     * vocabulary from their text plus the characters of the document separator; "gpt2" has a fixed vocabulary.
     */
    public static Tokenizer forCorpus(String kind, Corpus... corpora) {
        return switch (kind) {
            case "char" -> {
                java.util.BitSet vocabulary = new java.util.BitSet();
                CharTokenizer.DOCUMENT_SEPARATOR.codePoints().forEach(vocabulary::set);
                for (Corpus corpus : corpora) {
                    for (int codePoint : corpus.codePoints()) {
                        vocabulary.set(codePoint);
                    }
                }
                yield new CharTokenizer(vocabulary.stream().toArray());
            }
            case Gpt2BpeTokenizer.KIND -> Gpt2BpeTokenizer.instance();
            default -> throw new IllegalArgumentException("unknown tokenizer kind \"" + kind + "\"; known: " + KINDS);
        };
    }

    public static Tokenizer fromDescriptor(TokenizerDescriptor descriptor) {
        return switch (descriptor.kind()) {
            case "char" -> new CharTokenizer(descriptor.charCodePoints());
            case Gpt2BpeTokenizer.KIND -> Gpt2BpeTokenizer.instance();
            default -> throw new IllegalArgumentException("unknown tokenizer kind \"" + descriptor.kind() + "\"");
        };
    }

    public static TokenizerDescriptor describe(Tokenizer tokenizer) {
        return switch (tokenizer) {
            case CharTokenizer chars -> new TokenizerDescriptor("char", chars.vocabSize(), chars.codePoints());
            case Gpt2BpeTokenizer gpt2 -> new TokenizerDescriptor(gpt2.kind(), gpt2.vocabSize(), new int[0]);
            default -> throw new IllegalArgumentException("cannot describe tokenizer " + tokenizer.getClass());
        };
    }
}
