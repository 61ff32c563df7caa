package io.slope.engine.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * The training text: an ordered list of documents read from files.
 *
 * <ul>
 *   <li>A plain text file is one document (UTF-8; a leading byte-order mark is dropped; line endings are kept).
 *   <li>A {@code .jsonl} file holds one document per line: a JSON object whose "text" field is a string. Blank lines
 *       are ignored; any other line without such a field is an error naming the file and line.
 *   <li>A folder contributes every regular file below it, recursively, in path order, so the corpus does not depend
 *       on the order the file system lists entries. Entries whose name starts with '.' (such as .git) are left out.
 *       Files that are not text, that is not valid UTF-8 or containing a NUL byte, are skipped and listed in
 *       {@link #skippedFiles()}. A file named directly must be text: it is an error otherwise.
 * </ul>
 *
 * Empty documents are dropped. Downstream, documents are tokenized one by one and joined with the tokenizer's
 * {@link Tokenizer#documentSeparator()} ({@code <|endoftext|>} for gpt2, a blank line for char). The whole corpus is
 * held in memory.
 */
public record Corpus(List<Document> documents, List<Path> files, List<SkippedFile> skippedFiles) {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** A document and where it came from: the file, and for JSON lines the line number. */
    public record Document(String source, String text) {}

    public record SkippedFile(Path path, String reason) {}

    public Corpus {
        documents = List.copyOf(documents);
        files = List.copyOf(files);
        skippedFiles = List.copyOf(skippedFiles);
    }

    /** Reads the given files and folders, in the given order. */
    public static Corpus read(List<Path> paths) throws IOException {
        if (paths.isEmpty()) {
            throw new InvalidCorpusException("no corpus paths given");
        }
        List<Document> documents = new ArrayList<>();
        List<Path> files = new ArrayList<>();
        List<SkippedFile> skipped = new ArrayList<>();
        for (Path path : paths) {
            if (Files.isDirectory(path)) {
                for (Path file : filesUnder(path)) {
                    readFile(file, false, documents, files, skipped);
                }
            } else if (Files.isRegularFile(path)) {
                readFile(path, true, documents, files, skipped);
            } else {
                throw new InvalidCorpusException("corpus path " + path + " does not exist or is not a file or folder");
            }
        }
        if (documents.isEmpty()) {
            throw new InvalidCorpusException("the corpus " + paths + " contains no text (" + files.size()
                    + " files read, " + skipped.size() + " skipped as not text)");
        }
        return new Corpus(documents, files, skipped);
    }

    public long characters() {
        return documents.stream().mapToLong(d -> d.text().length()).sum();
    }

    /** One line for logs and manifests. */
    public String description() {
        return documents.size() + " documents, " + characters() + " characters from " + files.size() + " files"
                + (skippedFiles.isEmpty() ? "" : " (" + skippedFiles.size() + " non-text files skipped)");
    }

    private static List<Path> filesUnder(Path folder) throws IOException {
        try (Stream<Path> walk = Files.walk(folder)) {
            return walk.filter(Files::isRegularFile)
                    .filter(file -> noHiddenPart(folder.relativize(file)))
                    .sorted()
                    .toList();
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private static boolean noHiddenPart(Path relative) {
        for (Path part : relative) {
            if (part.toString().startsWith(".")) {
                return false;
            }
        }
        return true;
    }

    private static void readFile(Path file, boolean namedDirectly, List<Document> documents, List<Path> files,
            List<SkippedFile> skipped) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        String notText = null;
        String text = null;
        int nul = indexOfNul(bytes);
        if (nul >= 0) {
            notText = "contains a NUL byte at offset " + nul;
        } else {
            try {
                text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(bytes)).toString();
            } catch (CharacterCodingException e) {
                notText = "is not valid UTF-8";
            }
        }
        if (notText != null) {
            if (namedDirectly) {
                throw new InvalidCorpusException("corpus file " + file + " is not text: it " + notText);
            }
            skipped.add(new SkippedFile(file, notText));
            return;
        }
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        files.add(file);
        if (file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".jsonl")) {
            readJsonLines(file, text, documents);
        } else if (!text.isEmpty()) {
            documents.add(new Document(file.toString(), text));
        }
    }

    private static void readJsonLines(Path file, String content, List<Document> documents) {
        String[] lines = content.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            if (line.isBlank()) {
                continue;
            }
            String where = file + ":" + (i + 1);
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new InvalidCorpusException(where + ": not valid JSON: " + e.getOriginalMessage());
            }
            JsonNode text = node == null ? null : node.get("text");
            if (text == null || !text.isTextual()) {
                throw new InvalidCorpusException(where + ": expected a JSON object with a string field \"text\"");
            }
            if (!text.textValue().isEmpty()) {
                documents.add(new Document(where, text.textValue()));
            }
        }
    }

    private static int indexOfNul(byte[] bytes) {
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == 0) {
                return i;
            }
        }
        return -1;
    }
}
