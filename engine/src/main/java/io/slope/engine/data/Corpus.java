package io.slope.engine.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HexFormat;
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
 * {@link Tokenizer#documentSeparator()} ({@code <|endoftext|>} for gpt2, a blank line for char).
 *
 * <p>The text is never held in memory: {@link #read} streams every file once to classify it and to learn what the
 * preparation needs up front (document count, characters, {@link #sha256()}, the code points for a char vocabulary),
 * and {@link #stream} streams it again in pieces. Memory is a few buffers, plus one line of a JSON lines file.
 */
public final class Corpus {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final int READ_BYTES = 1 << 16;

    /** A document and where it came from: the file, and for JSON lines the line number. */
    public record Document(String source, String text) {}

    public record SkippedFile(Path path, String reason) {}

    /** Receives the documents of {@link #stream}: each as one or more pieces of text, in order. */
    public interface DocumentSink {
        void startDocument() throws IOException;

        void text(CharSequence piece) throws IOException;

        void endDocument() throws IOException;
    }

    private final List<Document> inMemory;
    private final List<Path> files;
    private final List<SkippedFile> skippedFiles;
    private final long documentCount;
    private final long characters;
    private final String sha256;
    private final BitSet codePoints;

    private Corpus(List<Document> inMemory, List<Path> files, List<SkippedFile> skippedFiles, Stats stats) {
        this.inMemory = inMemory;
        this.files = List.copyOf(files);
        this.skippedFiles = List.copyOf(skippedFiles);
        this.documentCount = stats.documents;
        this.characters = stats.characters;
        this.sha256 = HexFormat.of().formatHex(stats.sha256.digest());
        this.codePoints = stats.codePoints;
    }

    /** A corpus of documents already in memory (tests, small programmatic corpora). Empty texts are dropped. */
    public static Corpus of(List<Document> documents) {
        List<Document> kept = documents.stream().filter(d -> !d.text().isEmpty()).toList();
        Stats stats = new Stats();
        for (Document document : kept) {
            stats.document(document.text());
        }
        return new Corpus(kept, List.of(), List.of(), stats);
    }

    /** Reads the given files and folders, in the given order, without keeping their text. */
    public static Corpus read(List<Path> paths) throws IOException {
        if (paths.isEmpty()) {
            throw new InvalidCorpusException("no corpus paths given");
        }
        List<Path> files = new ArrayList<>();
        List<SkippedFile> skipped = new ArrayList<>();
        Stats stats = new Stats();
        for (Path path : paths) {
            if (Files.isDirectory(path)) {
                for (Path file : filesUnder(path)) {
                    scanFile(file, false, stats, files, skipped);
                }
            } else if (Files.isRegularFile(path)) {
                scanFile(path, true, stats, files, skipped);
            } else {
                throw new InvalidCorpusException("corpus path " + path + " does not exist or is not a file or folder");
            }
        }
        if (stats.documents == 0) {
            throw new InvalidCorpusException("the corpus " + paths + " contains no text (" + files.size()
                    + " files read, " + skipped.size() + " skipped as not text)");
        }
        return new Corpus(null, files, skipped, stats);
    }

    public List<Path> files() {
        return files;
    }

    public List<SkippedFile> skippedFiles() {
        return skippedFiles;
    }

    public long documentCount() {
        return documentCount;
    }

    /** UTF-16 code units of all documents. */
    public long characters() {
        return characters;
    }

    /**
     * SHA-256 over every document's UTF-8 bytes each followed by one NUL byte (as {@link DatasetManifest.Source}
     * defines it): the text's identity, independent of the tokenizer and of file names.
     */
    public String sha256() {
        return sha256;
    }

    /** Every distinct code point of the text, sorted. */
    public int[] codePoints() {
        return codePoints.stream().toArray();
    }

    /** One line for logs and manifests. */
    public String description() {
        return documentCount + " documents, " + characters + " characters from " + files.size() + " files"
                + (skippedFiles.isEmpty() ? "" : " (" + skippedFiles.size() + " non-text files skipped)");
    }

    /**
     * Reads every document again, in order, into {@code sink}, a piece at a time.
     *
     * @throws IOException also when a file no longer holds the text {@link #read} found in it
     */
    public void stream(DocumentSink sink) throws IOException {
        if (inMemory != null) {
            for (Document document : inMemory) {
                sink.startDocument();
                sink.text(document.text());
                sink.endDocument();
            }
            return;
        }
        Stats again = new Stats();
        for (Path file : files) {
            String notText;
            if (isJsonLines(file)) {
                JsonLines lines = new JsonLines(file, text -> {
                    again.document(text);
                    sink.startDocument();
                    sink.text(text);
                    sink.endDocument();
                });
                notText = decode(file, null, lines);
                lines.finish();
            } else {
                PlainDocument document = new PlainDocument(again, sink);
                notText = decode(file, again.sha256, document);
                document.finish();
            }
            if (notText != null) {
                throw new IOException("corpus file " + file + " changed while it was read: it " + notText);
            }
        }
        if (again.documents != documentCount || !HexFormat.of().formatHex(again.sha256.digest()).equals(sha256)) {
            throw new IOException("the corpus changed while it was read: its files no longer hold the text "
                    + description() + " found first");
        }
    }

    private static boolean isJsonLines(Path file) {
        return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".jsonl");
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

    /** Classifies one file and, when it is text, adds its documents to {@code stats}. */
    private static void scanFile(Path file, boolean namedDirectly, Stats stats, List<Path> files,
            List<SkippedFile> skipped) throws IOException {
        Stats fileStats = stats.copy();
        String notText;
        JsonLines lines = null;
        if (isJsonLines(file)) {
            lines = new JsonLines(file, fileStats::document);
            notText = decode(file, null, lines);
        } else {
            PlainDocument document = new PlainDocument(fileStats, null);
            notText = decode(file, fileStats.sha256, document);
            if (notText == null) {
                document.finish();
            }
        }
        if (notText != null) {
            if (namedDirectly) {
                throw new InvalidCorpusException("corpus file " + file + " is not text: it " + notText);
            }
            skipped.add(new SkippedFile(file, notText));
            return;
        }
        if (lines != null) {
            lines.finish();
        }
        files.add(file);
        stats.take(fileStats);
    }

    /** Consumes the decoded characters of one file. */
    private interface CharSink {
        void chars(CharBuffer chars) throws IOException;
    }

    /**
     * Decodes {@code file} as strict UTF-8 in pieces, a leading byte-order mark dropped, into {@code sink}, and feeds
     * the bytes after the mark to {@code bytes} when given. Returns why the file is not text (the first NUL byte,
     * which wins over invalid UTF-8 anywhere, as a whole-file check would find), or null when it is.
     */
    private static String decode(Path file, MessageDigest bytes, CharSink sink) throws IOException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.allocate(READ_BYTES);
        CharBuffer out = CharBuffer.allocate(READ_BYTES);
        boolean valid = true;
        long offset = 0;
        try (InputStream stream = Files.newInputStream(file)) {
            byte[] head = stream.readNBytes(3);
            String nul = nul(head, 0, head.length, 0);
            if (nul != null) {
                return nul;
            }
            offset = head.length;
            boolean bom = head.length == 3 && head[0] == (byte) 0xEF && head[1] == (byte) 0xBB
                    && head[2] == (byte) 0xBF;
            if (!bom) {
                in.put(head);
                if (bytes != null) {
                    bytes.update(head);
                }
            }
            boolean end = false;
            while (!end) {
                int from = in.position();
                int n = stream.read(in.array(), from, in.remaining());
                end = n < 0;
                if (n > 0) {
                    nul = nul(in.array(), from, n, offset - from);
                    if (nul != null) {
                        return nul;
                    }
                    if (bytes != null && valid) {
                        bytes.update(in.array(), from, n);
                    }
                    offset += n;
                    in.position(from + n);
                }
                in.flip();
                if (valid) {
                    valid = decodeInto(decoder, in, out, end, sink);
                }
                if (valid) {
                    in.compact();
                } else {
                    in.clear();
                }
            }
        }
        return valid ? null : "is not valid UTF-8";
    }

    /** Decodes what {@code in} holds into {@code sink}; false on invalid UTF-8. */
    private static boolean decodeInto(CharsetDecoder decoder, ByteBuffer in, CharBuffer out, boolean end,
            CharSink sink) throws IOException {
        while (true) {
            CoderResult result = decoder.decode(in, out, end);
            if (result.isError()) {
                return false;
            }
            if (result.isUnderflow() && end) {
                result = decoder.flush(out);
            }
            out.flip();
            if (out.hasRemaining()) {
                sink.chars(out);
            }
            out.clear();
            if (result.isUnderflow()) {
                return true;
            }
        }
    }

    private static String nul(byte[] bytes, int from, int count, long offsetOfIndexZero) {
        for (int i = from; i < from + count; i++) {
            if (bytes[i] == 0) {
                return "contains a NUL byte at offset " + (offsetOfIndexZero + i);
            }
        }
        return null;
    }

    /** A plain text file as one document: counted into {@code stats} and, when given, passed on to {@code sink}. */
    private static final class PlainDocument implements CharSink {
        private final Stats stats;
        private final DocumentSink sink;
        private long characters;

        PlainDocument(Stats stats, DocumentSink sink) {
            this.stats = stats;
            this.sink = sink;
        }

        @Override
        public void chars(CharBuffer chars) throws IOException {
            if (characters == 0 && sink != null) {
                sink.startDocument();
            }
            characters += chars.remaining();
            stats.codePoints(chars);
            if (sink != null) {
                sink.text(chars);
            }
        }

        /** Ends the document; an empty file is no document. */
        void finish() throws IOException {
            stats.endOfText();
            if (characters > 0) {
                stats.documents++;
                stats.characters += characters;
                stats.sha256.update((byte) 0);
                if (sink != null) {
                    sink.endDocument();
                }
            }
        }
    }

    /** Receives the text of each non-empty JSON line. */
    private interface LineDocument {
        void text(String text) throws IOException;
    }

    /**
     * A JSON lines file cut at '\n' (only) into lines, each holding one document. A line that is not a document is
     * remembered and reported by {@link #finish}, so that a file found not to be text later is skipped, not refused.
     */
    private static final class JsonLines implements CharSink {
        private final Path file;
        private final LineDocument documents;
        private final StringBuilder line = new StringBuilder();
        private int lineNumber = 1;
        private InvalidCorpusException error;

        JsonLines(Path file, LineDocument documents) {
            this.file = file;
            this.documents = documents;
        }

        @Override
        public void chars(CharBuffer chars) throws IOException {
            while (chars.hasRemaining()) {
                char c = chars.get();
                if (c == '\n') {
                    endLine();
                } else {
                    line.append(c);
                }
            }
        }

        void finish() throws IOException {
            endLine();
            if (error != null) {
                throw error;
            }
        }

        private void endLine() throws IOException {
            String text = line.toString();
            line.setLength(0);
            int number = lineNumber++;
            if (error != null || text.isBlank()) {
                return;
            }
            String where = file + ":" + number;
            JsonNode node;
            try {
                node = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                error = new InvalidCorpusException(where + ": not valid JSON: " + e.getOriginalMessage());
                return;
            }
            JsonNode field = node == null ? null : node.get("text");
            if (field == null || !field.isTextual()) {
                error = new InvalidCorpusException(where + ": expected a JSON object with a string field \"text\"");
                return;
            }
            if (!field.textValue().isEmpty()) {
                documents.text(field.textValue());
            }
        }
    }

    /** What the preparation needs to know of the text before it streams it. */
    private static final class Stats {
        MessageDigest sha256 = DurableFiles.newSha256();
        BitSet codePoints = new BitSet();
        long documents;
        long characters;
        private char pendingHigh;

        /** A whole document: counted, hashed and its code points noted. */
        void document(String text) {
            documents++;
            characters += text.length();
            sha256.update(text.getBytes(StandardCharsets.UTF_8));
            sha256.update((byte) 0);
            codePoints(CharBuffer.wrap(text));
            endOfText();
        }

        /** Notes the code points of a piece of text; a surrogate pair may be cut between two pieces. */
        void codePoints(CharBuffer chars) {
            for (int i = chars.position(); i < chars.limit(); i++) {
                char c = chars.get(i);
                if (pendingHigh != 0) {
                    char high = pendingHigh;
                    pendingHigh = 0;
                    if (Character.isLowSurrogate(c)) {
                        codePoints.set(Character.toCodePoint(high, c));
                        continue;
                    }
                    codePoints.set(high);
                }
                if (Character.isHighSurrogate(c)) {
                    pendingHigh = c;
                } else {
                    codePoints.set(c);
                }
            }
        }

        void endOfText() {
            if (pendingHigh != 0) {
                codePoints.set(pendingHigh);
                pendingHigh = 0;
            }
        }

        Stats copy() {
            Stats copy = new Stats();
            try {
                copy.sha256 = (MessageDigest) sha256.clone();
            } catch (CloneNotSupportedException e) {
                throw new IllegalStateException(e);
            }
            copy.codePoints = (BitSet) codePoints.clone();
            copy.documents = documents;
            copy.characters = characters;
            return copy;
        }

        void take(Stats other) {
            sha256 = other.sha256;
            codePoints = other.codePoints;
            documents = other.documents;
            characters = other.characters;
        }
    }
}
