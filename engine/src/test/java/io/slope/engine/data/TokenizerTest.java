package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.PythonOracle;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {
    /** Letters, digits, contractions, whitespace runs, tabs, CRLF, accents, CJK, emoji and special-token text. */
    static final String SAMPLE = """
            Hello world! It's 2024; we'll see if they've re-tokenized "this" correctly.
              Indented   text\twith\ttabs and trailing spaces   \r
            Ünïcödé: naïve café, Straße, 日本語のテキスト, 한국어, emoji 🙂👍🏽, math ∑x² ≤ ∞.
            Numbers 3.14159 1,000,000 0x1F and code: for (int i = 0; i < n; i++) { sum += a[i]; }
            <|endoftext|> is just text here.


            """ + "The end.   ";

    @Test
    void charTokenizerRoundTripsItsCorpus() {
        CharTokenizer tokenizer = CharTokenizer.fromText(SAMPLE);
        assertEquals(SAMPLE, tokenizer.decode(tokenizer.encode(SAMPLE)));
        assertEquals(SAMPLE.codePoints().count(), tokenizer.encode(SAMPLE).length);
    }

    @Test
    void gpt2RoundTripsArbitraryText() {
        Tokenizer gpt2 = Gpt2BpeTokenizer.instance();
        assertEquals(SAMPLE, gpt2.decode(gpt2.encode(SAMPLE)));
        assertEquals(50257, gpt2.vocabSize());
        assertEquals("gpt2", gpt2.kind());
    }

    @Test
    void gpt2GivesTheWellKnownIdsOfHelloWorld() {
        assertArrayEquals(new int[] {15496, 995}, Gpt2BpeTokenizer.instance().encode("Hello world"));
    }

    @Test
    void gpt2EncodesEndOfTextMarkupAsOrdinaryTextButSeparatesDocumentsWithTheRealToken() {
        Tokenizer gpt2 = Gpt2BpeTokenizer.instance();
        int[] ids = gpt2.encode("<|endoftext|>");
        assertTrue(ids.length > 1, "markup in the corpus must not become the control token");
        assertTrue(Arrays.stream(ids).noneMatch(id -> id == Gpt2BpeTokenizer.END_OF_TEXT));
        assertArrayEquals(new int[] {50256}, gpt2.documentSeparator());
        assertEquals("<|endoftext|>", gpt2.decode(gpt2.documentSeparator()));
    }

    @Test
    void gpt2RefusesIdsOutsideItsVocabulary() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> Gpt2BpeTokenizer.instance().decode(new int[] {50257}));
        assertTrue(e.getMessage().contains("50257"), e.getMessage());
    }

    @Test
    void gpt2IdsEqualTiktokensOnTheSampleText(@TempDir Path dir) throws Exception {
        Path text = dir.resolve("sample.txt");
        Files.writeString(text, SAMPLE);
        String json = PythonOracle.run("gpt2_bpe_oracle.py", text.toString());
        int[] expected = new ObjectMapper().readValue(json, int[].class);
        assertTrue(expected.length > 50, "the oracle returned too few ids: " + json);
        assertArrayEquals(expected, Gpt2BpeTokenizer.instance().encode(SAMPLE));
    }

    @Test
    void charVocabularyComesFromTheCorpusAndSurvivesWithoutIt() {
        Corpus corpus = Corpus.of(List.of(new Corpus.Document("a", "abba"), new Corpus.Document("b", "cab")));
        Tokenizer tokenizer = Tokenizers.forCorpus("char", corpus);
        assertEquals(4, tokenizer.vocabSize(), "a, b, c and the separator's newline");
        assertEquals("\n\n", tokenizer.decode(tokenizer.documentSeparator()));

        TokenizerDescriptor stored = Tokenizers.describe(tokenizer);
        Tokenizer rebuilt = Tokenizers.fromDescriptor(stored);
        assertArrayEquals(tokenizer.encode("cab\n\nabba"), rebuilt.encode("cab\n\nabba"));
        assertEquals(stored, Tokenizers.describe(rebuilt));
    }

    @Test
    void unknownTokenizerKindIsRefusedNamingTheKnownOnes() {
        Corpus corpus = Corpus.of(List.of(new Corpus.Document("a", "x")));
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forCorpus("sentencepiece", corpus));
        assertEquals("unknown tokenizer kind \"sentencepiece\"; known: [char, gpt2]", e.getMessage());
    }
}
