package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CorpusTest {
    @TempDir
    Path dir;

    @Test
    void folderIsReadRecursivelyInPathOrderSkippingHiddenEntriesAndNonText() throws IOException {
        write("corpus/b.txt", "bee");
        write("corpus/a/z.txt", "zed");
        write("corpus/a/y.md", "why");
        write("corpus/.git/config", "hidden");
        write("corpus/.notes.txt", "hidden too");
        Files.write(dir.resolve("corpus/a/image.png"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 0, 0, 0, 13});
        Files.write(dir.resolve("corpus/latin1.txt"), "caf\u00e9".getBytes(StandardCharsets.ISO_8859_1));

        Corpus corpus = Corpus.read(List.of(dir.resolve("corpus")));

        assertEquals(List.of("why", "zed", "bee"), texts(corpus));
        assertEquals(2, corpus.skippedFiles().size());
        assertEquals(dir.resolve("corpus/a/image.png"), corpus.skippedFiles().get(0).path());
        assertEquals("contains a NUL byte at offset 4", corpus.skippedFiles().get(0).reason());
        assertEquals("is not valid UTF-8", corpus.skippedFiles().get(1).reason());
        assertTrue(corpus.description().contains("2 non-text files skipped"), corpus.description());
    }

    @Test
    void jsonLinesGiveOneDocumentPerLineFromTheTextField() throws IOException {
        write("docs.jsonl", """
                {"text": "first\\nwith a newline", "id": 1}

                {"id": 2, "text": "second"}
                """);
        Corpus corpus = Corpus.read(List.of(dir.resolve("docs.jsonl")));
        assertEquals(List.of("first\nwith a newline", "second"),
                texts(corpus));
    }

    @Test
    void jsonLineWithoutTextIsAnErrorNamingFileAndLine() throws IOException {
        write("docs.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"no text field\"}\n");
        var e = assertThrows(InvalidCorpusException.class, () -> Corpus.read(List.of(dir.resolve("docs.jsonl"))));
        assertEquals(dir.resolve("docs.jsonl") + ":3: expected a JSON object with a string field \"text\"",
                e.getMessage());
    }

    @Test
    void malformedJsonLineIsAnErrorNamingFileAndLine() throws IOException {
        write("docs.jsonl", "{\"text\": \"unterminated}\n");
        var e = assertThrows(InvalidCorpusException.class, () -> Corpus.read(List.of(dir.resolve("docs.jsonl"))));
        assertTrue(e.getMessage().startsWith(dir.resolve("docs.jsonl") + ":1: not valid JSON"), e.getMessage());
    }

    @Test
    void jsonLinesFileThatIsNotTextIsSkippedEvenWithABadLineBeforeItsNulByte() throws IOException {
        write("corpus/a.txt", "kept");
        Files.write(dir.resolve("corpus/b.jsonl"),
                "not json\n{\"text\": \"x\u0000\"}\n".getBytes(StandardCharsets.UTF_8));
        Corpus corpus = Corpus.read(List.of(dir.resolve("corpus")));
        assertEquals(List.of("kept"), texts(corpus));
        assertEquals("contains a NUL byte at offset 20", corpus.skippedFiles().getFirst().reason());
    }

    @Test
    void aFileChangedBetweenReadingAndStreamingFailsTheStream() throws IOException {
        write("a.txt", "the text as read");
        Corpus corpus = Corpus.read(List.of(dir.resolve("a.txt")));
        write("a.txt", "the text as rewritten");
        var e = assertThrows(IOException.class, () -> texts(corpus));
        assertTrue(e.getMessage().contains("changed while it was read"), e.getMessage());
    }

    @Test
    void missingPathIsAnErrorNamingIt() {
        Path missing = dir.resolve("nope.txt");
        var e = assertThrows(InvalidCorpusException.class, () -> Corpus.read(List.of(missing)));
        assertEquals("corpus path " + missing + " does not exist or is not a file or folder", e.getMessage());
    }

    @Test
    void binaryFileNamedDirectlyIsAnErrorRatherThanSkipped() throws IOException {
        Files.write(dir.resolve("weights.bin"), new byte[] {1, 2, 0, 3});
        var e = assertThrows(InvalidCorpusException.class, () -> Corpus.read(List.of(dir.resolve("weights.bin"))));
        assertEquals("corpus file " + dir.resolve("weights.bin") + " is not text: it contains a NUL byte at offset 2",
                e.getMessage());
    }

    @Test
    void byteOrderMarkIsDroppedAndEmptyDocumentsIgnored() throws IOException {
        write("bom.txt", "\uFEFFtext");
        write("empty.txt", "");
        Corpus corpus = Corpus.read(List.of(dir.resolve("bom.txt"), dir.resolve("empty.txt")));
        assertEquals(List.of("text"), texts(corpus));
    }

    @Test
    void corpusWithoutAnyTextIsAnError() throws IOException {
        write("empty/a.txt", "");
        var e = assertThrows(InvalidCorpusException.class, () -> Corpus.read(List.of(dir.resolve("empty"))));
        assertTrue(e.getMessage().contains("contains no text"), e.getMessage());
    }

    private void write(String relative, String content) throws IOException {
        Path file = dir.resolve(relative);
        Files.createDirectories(file.getParent());
        Files.writeString(file, content);
    }

    /** The documents' texts, streamed back. */
    static List<String> texts(Corpus corpus) throws IOException {
        List<String> texts = new java.util.ArrayList<>();
        StringBuilder current = new StringBuilder();
        corpus.stream(new Corpus.DocumentSink() {
            @Override
            public void startDocument() {
                current.setLength(0);
            }

            @Override
            public void text(CharSequence piece) {
                current.append(piece);
            }

            @Override
            public void endDocument() {
                texts.add(current.toString());
            }
        });
        return texts;
    }
}
