package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Encoding in pieces gives the tokens of encoding each document whole. */
class TextEncoderTest {
    private static final Tokenizer GPT2 = Gpt2BpeTokenizer.instance();

    /** Characters of every class the GPT-2 pre-tokenizer tells apart, white space by any definition included. */
    private static final String CHARS = "aZs'ltvrdme\u00e9\u4e2d\u0434\u0645 \n\t\r\u000B\f\u001C\u001F\u0085\u00A0"
            + "\u1680\u2007\u200B\u2028\u202F\u3000\uFEFF\u180E09\u0661\u00bd\u2160.,!_(\u3002\u0301\u200D-\uD83D"
            + "\uDE00";

    private static final String[] CONTEXTS = {"", "x", " ", "  ", "\n", "\n\n", "a ", "'", "'s", "1", " 1", "..",
        "\u00A0", " \u4e2d", "\uD83D\uDE00", "\t \n", "ll", "x'"};

    @Test
    void gpt2SplitsOnlyWhereEncodingThePiecesEqualsEncodingTheWhole() {
        int allowed = 0;
        for (char before : CHARS.toCharArray()) {
            for (char after : CHARS.toCharArray()) {
                if (!GPT2.canSplitBetween(before, after)) {
                    continue;
                }
                allowed++;
                for (String left : CONTEXTS) {
                    for (String right : CONTEXTS) {
                        String head = left + before;
                        String tail = after + right;
                        assertArrayEquals(GPT2.encode(head + tail), concat(GPT2.encode(head), GPT2.encode(tail)),
                                "cut between U+%04X and U+%04X in \"%s|%s\"".formatted((int) before, (int) after,
                                        head, tail));
                    }
                }
            }
        }
        assertTrue(allowed > 200, "the rule allows cuts in ordinary text: " + allowed);
    }

    @Test
    void piecewiseEncodingEqualsWholeDocumentEncodingForGpt2AndChars() throws IOException {
        Random random = new Random(5);
        for (int round = 0; round < 300; round++) {
            List<String> documents = new ArrayList<>();
            int count = 1 + random.nextInt(3);
            for (int i = 0; i < count; i++) {
                documents.add(round % 2 == 0 ? DatasetFingerprintTest.randomText(random, random.nextInt(600))
                        : randomChars(random, random.nextInt(600)));
            }
            documents.removeIf(String::isEmpty);
            if (documents.isEmpty()) {
                continue;
            }
            Corpus corpus = Corpus.of(documents.stream().map(t -> new Corpus.Document("t", t)).toList());
            for (Tokenizer tokenizer : List.of(GPT2, Tokenizers.forCorpus("char", corpus))) {
                int[] whole = documents.stream()
                        .map(tokenizer::encode)
                        .reduce((a, b) -> concat(a, tokenizer.documentSeparator(), b))
                        .orElseThrow();
                int window = 2 + random.nextInt(40);
                assertArrayEquals(whole, encodeInRandomPieces(tokenizer, window, documents, random),
                        "window " + window + ", documents " + documents);
            }
        }
    }

    private static String randomChars(Random random, int length) {
        StringBuilder text = new StringBuilder();
        IntStream.range(0, length).forEach(i -> text.append(CHARS.charAt(random.nextInt(CHARS.length()))));
        return text.toString();
    }

    private static int[] encodeInRandomPieces(Tokenizer tokenizer, int window, List<String> documents, Random random)
            throws IOException {
        List<int[]> out = new ArrayList<>();
        TextEncoder encoder = new TextEncoder(tokenizer, window, out::add);
        for (String document : documents) {
            encoder.startDocument();
            for (int i = 0; i < document.length(); ) {
                int n = Math.min(document.length() - i, 1 + random.nextInt(2 * window));
                encoder.text(document.substring(i, i + n));
                i += n;
            }
            encoder.endDocument();
        }
        return concat(out.toArray(int[][]::new));
    }

    private static int[] concat(int[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToInt(java.util.Arrays::stream).toArray();
    }
}
