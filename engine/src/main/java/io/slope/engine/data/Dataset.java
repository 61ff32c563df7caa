package io.slope.engine.data;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A tokenized corpus on disk: {@code train-NNNNN.tok} and {@code val-NNNNN.tok} shards plus {@code dataset.json}.
 *
 * <p>The token stream is every document encoded on its own, joined by the tokenizer's document separator. Its last
 * {@code floor(total · valFraction)} tokens are the validation split; the rest is the training split. With held-out
 * files the stream is the corpus's documents, then the held-out files' documents encoded as a stream of their own
 * (no separator between the two): the validation split is exactly the held-out files' tokens.
 */
public final class Dataset implements AutoCloseable {
    public static final String MANIFEST = "dataset.json";
    public static final long DEFAULT_TOKENS_PER_SHARD = 100_000_000L;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(SerializationFeature.INDENT_OUTPUT);
    private static final int SPILL_CHUNK_TOKENS = 1 << 18;

    private final Path directory;
    private final DatasetManifest manifest;
    private final ShardedTokens train;
    private final ShardedTokens validation;

    private Dataset(Path directory, DatasetManifest manifest, ShardedTokens train, ShardedTokens validation) {
        this.directory = directory;
        this.manifest = manifest;
        this.train = train;
        this.validation = validation;
    }

    /**
     * Tokenizes the corpus and writes the dataset into {@code directory}, which must not exist yet. Everything is
     * written into a staging folder beside it and renamed into place once complete and synced, so a crash never
     * leaves a half-written dataset under the final name.
     */
    public static Dataset prepare(Corpus corpus, Tokenizer tokenizer, double valFraction, long tokensPerShard,
            Path directory) throws IOException {
        if (!(valFraction >= 0 && valFraction < 1)) {
            throw new IllegalArgumentException("valFraction must be in [0, 1), got " + valFraction);
        }
        return prepare(corpus, null, tokenizer, valFraction, tokensPerShard, directory);
    }

    /**
     * As {@link #prepare(Corpus, Tokenizer, double, long, Path)}, but the validation split is the text of
     * {@code heldOut} and every token of {@code corpus} trains. The tokenizer must cover both (for "char",
     * {@link Tokenizers#forCorpus} of both).
     *
     * @throws InvalidCorpusException when a file is in both: held-out text must never be trained on
     */
    public static Dataset prepare(Corpus corpus, Corpus heldOut, Tokenizer tokenizer, long tokensPerShard,
            Path directory) throws IOException {
        requireDisjoint(corpus, heldOut);
        return prepare(corpus, heldOut, tokenizer, 0.0, tokensPerShard, directory);
    }

    /**
     * The check {@link #prepare(Corpus, Corpus, Tokenizer, long, Path)} makes first, for callers that look for an
     * already prepared dataset before preparing one.
     *
     * @throws InvalidCorpusException when a held-out file is also read as training text (the same file, once links
     *     and {@code ..} are resolved)
     */
    public static void requireDisjoint(Corpus corpus, Corpus heldOut) throws IOException {
        List<Path> trained = realPaths(corpus.files());
        for (Path file : heldOut.files()) {
            if (trained.contains(file.toRealPath())) {
                throw new InvalidCorpusException("the held-out file " + file + " is also read as training text; "
                        + "list it among the held-out files only");
            }
        }
    }

    /** {@code heldOut} null: the last {@code valFraction} of the corpus is held out; else exactly its text. */
    private static Dataset prepare(Corpus corpus, Corpus heldOut, Tokenizer tokenizer, double valFraction,
            long tokensPerShard, Path directory) throws IOException {
        if (Files.exists(directory)) {
            throw new IllegalStateException("dataset folder " + directory + " already exists; open it with"
                    + " Dataset.open or remove it first");
        }
        DurableFiles.createDirectoryAtomically(directory, staging -> {
            TokenizerDescriptor descriptor = Tokenizers.describe(tokenizer);
            Path spill = staging.resolve("tokens.spill");
            long total;
            long corpusTokens;
            try (TokenSpill tokens = new TokenSpill(spill)) {
                encode(corpus, tokenizer, tokens);
                corpusTokens = tokens.count();
                if (heldOut != null) {
                    encode(heldOut, tokenizer, tokens);
                }
                total = tokens.count();
            }
            long validationTokens = heldOut != null ? total - corpusTokens : (long) Math.floor(total * valFraction);
            long trainTokens = total - validationTokens;
            if (trainTokens == 0) {
                throw new InvalidCorpusException("the corpus " + corpus.description() + " leaves no training tokens");
            }
            List<ShardInfo> trainShards = copyToShards(spill, 0, trainTokens, staging, "train", descriptor,
                    tokensPerShard);
            List<ShardInfo> validationShards = copyToShards(spill, trainTokens, validationTokens, staging, "val",
                    descriptor, tokensPerShard);
            Files.delete(spill);

            DatasetManifest manifest = new DatasetManifest(DatasetManifest.FORMAT_VERSION, tokenizer.kind(),
                    tokenizer.vocabSize(), valFraction, trainTokens, validationTokens, trainShards, validationShards,
                    source(corpus), heldOut == null ? null : source(heldOut));
            Files.write(staging.resolve(MANIFEST), JSON.writeValueAsBytes(manifest));
            DurableFiles.fsync(staging.resolve(MANIFEST));
        });
        return open(directory);
    }

    /** Opens a prepared dataset, verifying every shard against {@code dataset.json} and against each other. */
    public static Dataset open(Path directory) throws IOException {
        Path manifestFile = directory.resolve(MANIFEST);
        DatasetManifest manifest = readManifest(directory);
        ShardedTokens train = openSplit(directory, manifest.trainShards(), null);
        try {
            checkAgainstManifest(manifestFile, manifest, train);
            ShardedTokens validation = openSplit(directory, manifest.validationShards(), train);
            if (validation.length() != manifest.validationTokens()) {
                validation.close();
                throw new InvalidTokenShardException(manifestFile, "says " + manifest.validationTokens()
                        + " validation tokens but the shards hold " + validation.length());
            }
            return new Dataset(directory, manifest, train, validation);
        } catch (IOException | RuntimeException e) {
            train.close();
            throw e;
        }
    }

    /**
     * The tokenizer of a prepared dataset without opening all of it, for tools that need nothing else (sampling): from
     * {@code dataset.json} and, for "char", the vocabulary in the first training shard's header (that shard is
     * verified).
     */
    public static Tokenizer readTokenizer(Path directory) throws IOException {
        DatasetManifest manifest = readManifest(directory);
        if (!manifest.tokenizer().equals("char")) {
            return Tokenizers.fromDescriptor(new TokenizerDescriptor(manifest.tokenizer(), manifest.vocabSize(),
                    new int[0]));
        }
        try (TokenShardReader first = TokenShardReader.open(shardPath(directory,
                manifest.trainShards().getFirst().file()))) {
            checkTokenizer(directory.resolve(MANIFEST), manifest, first.tokenizer());
            return Tokenizers.fromDescriptor(first.tokenizer());
        }
    }

    /** {@code dataset.json}, refused when missing, unreadable, of an unknown version or without training shards. */
    private static DatasetManifest readManifest(Path directory) throws IOException {
        Path manifestFile = directory.resolve(MANIFEST);
        DatasetManifest manifest;
        try {
            JsonNode tree = JSON.readTree(Files.readAllBytes(manifestFile));
            int version = tree.path("formatVersion").asInt(-1);
            if (version != DatasetManifest.FORMAT_VERSION) {
                throw new InvalidTokenShardException(manifestFile, "dataset format version " + version
                        + " is not supported; this reader knows version " + DatasetManifest.FORMAT_VERSION);
            }
            manifest = JSON.treeToValue(tree, DatasetManifest.class);
        } catch (NoSuchFileException e) {
            throw new InvalidTokenShardException(manifestFile, "missing: " + directory + " is not a prepared dataset");
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new InvalidTokenShardException(manifestFile, "not a valid dataset manifest: "
                    + e.getOriginalMessage());
        }
        if (manifest.trainShards().isEmpty()) {
            throw new InvalidTokenShardException(manifestFile, "lists no training shards");
        }
        return manifest;
    }

    public Path directory() {
        return directory;
    }

    public DatasetManifest manifest() {
        return manifest;
    }

    /** The tokenizer the shards were written with, rebuilt from their headers: no corpus needed. */
    public Tokenizer tokenizer() {
        return Tokenizers.fromDescriptor(train.tokenizer());
    }

    public TokenizerDescriptor tokenizerDescriptor() {
        return train.tokenizer();
    }

    public TokenSequence train() {
        return train;
    }

    public TokenSequence validation() {
        return validation;
    }

    @Override
    public void close() {
        train.close();
        validation.close();
    }

    /** Opens one split's shards; those of the validation split must share the training shards' tokenizer. */
    private static ShardedTokens openSplit(Path directory, List<ShardInfo> entries, ShardedTokens train)
            throws IOException {
        List<Path> files = entries.stream().map(entry -> shardPath(directory, entry.file())).toList();
        ShardedTokens tokens = train == null ? ShardedTokens.open(files)
                : ShardedTokens.open(files, train.tokenizer(), train.shards().getFirst().file().toString());
        try {
            for (int i = 0; i < entries.size(); i++) {
                ShardInfo entry = entries.get(i);
                TokenShardReader shard = tokens.shards().get(i);
                if (!shard.contentSha256().equals(entry.sha256()) || shard.length() != entry.tokens()) {
                    throw new InvalidTokenShardException(shard.file(), "does not match " + MANIFEST + ": it has "
                            + shard.length() + " tokens with sha256 " + shard.contentSha256() + ", the manifest lists "
                            + entry.tokens() + " tokens with sha256 " + entry.sha256());
                }
            }
        } catch (RuntimeException e) {
            tokens.close();
            throw e;
        }
        return tokens;
    }

    private static void checkAgainstManifest(Path manifestFile, DatasetManifest manifest, ShardedTokens train) {
        checkTokenizer(manifestFile, manifest, train.tokenizer());
        if (train.length() != manifest.trainTokens()) {
            throw new InvalidTokenShardException(manifestFile, "says " + manifest.trainTokens()
                    + " training tokens but the shards hold " + train.length());
        }
    }

    private static void checkTokenizer(Path manifestFile, DatasetManifest manifest, TokenizerDescriptor tokenizer) {
        if (!tokenizer.kind().equals(manifest.tokenizer()) || tokenizer.vocabSize() != manifest.vocabSize()) {
            throw new InvalidTokenShardException(manifestFile, "says tokenizer " + manifest.tokenizer()
                    + " with vocabulary size " + manifest.vocabSize() + " but the shards have " + tokenizer.kind()
                    + " with vocabulary size " + tokenizer.vocabSize());
        }
    }

    /** A shard name from the manifest, refused when it would point outside the dataset folder. */
    private static Path shardPath(Path directory, String name) {
        Path base = directory.toAbsolutePath().normalize();
        Path file = base.resolve(name).normalize();
        if (!base.equals(file.getParent()) || !name.endsWith(TokenShardWriter.EXTENSION)) {
            throw new InvalidTokenShardException(directory.resolve(MANIFEST), "invalid shard file name " + name);
        }
        return file;
    }

    private static DatasetManifest.Source source(Corpus corpus) {
        return new DatasetManifest.Source(corpus.description(), corpus.documentCount(),
                corpus.files().stream().map(Path::toString).toList(),
                corpus.skippedFiles().stream().map(s -> s.path() + ": " + s.reason()).toList(), corpus.sha256());
    }

    /** Real paths, so that a file reached through a link or another spelling is the same file. */
    private static List<Path> realPaths(List<Path> files) throws IOException {
        List<Path> real = new ArrayList<>(files.size());
        for (Path file : files) {
            real.add(file.toRealPath());
        }
        return real;
    }

    /** Streams the corpus document by document into the spill ({@link TextEncoder}). */
    private static void encode(Corpus corpus, Tokenizer tokenizer, TokenSpill tokens) throws IOException {
        corpus.stream(new TextEncoder(tokenizer, TextEncoder.DEFAULT_WINDOW, tokens::append));
    }

    private static List<ShardInfo> copyToShards(Path spill, long from, long count, Path directory, String prefix,
            TokenizerDescriptor tokenizer, long tokensPerShard) throws IOException {
        try (FileChannel in = FileChannel.open(spill, StandardOpenOption.READ);
                TokenShardWriter writer = new TokenShardWriter(directory, prefix, tokenizer, tokensPerShard)) {
            ByteBuffer bytes = ByteBuffer.allocateDirect(SPILL_CHUNK_TOKENS * 4).order(ByteOrder.LITTLE_ENDIAN);
            int[] chunk = new int[SPILL_CHUNK_TOKENS];
            long position = from * 4;
            for (long done = 0; done < count; ) {
                int n = (int) Math.min(SPILL_CHUNK_TOKENS, count - done);
                bytes.clear().limit(n * 4);
                while (bytes.hasRemaining()) {
                    if (in.read(bytes, position + bytes.position()) < 0) {
                        throw new IOException(spill + ": ended early");
                    }
                }
                IntBuffer ints = bytes.flip().asIntBuffer();
                ints.get(chunk, 0, n);
                writer.write(chunk, 0, n);
                position += n * 4L;
                done += n;
            }
            return writer.finish();
        }
    }

    /** The token stream on its way to the shards: int32 little-endian, so memory stays flat for any corpus size. */
    private static final class TokenSpill implements AutoCloseable {
        private final FileChannel channel;
        private final ByteBuffer buffer = ByteBuffer.allocateDirect(SPILL_CHUNK_TOKENS * 4)
                .order(ByteOrder.LITTLE_ENDIAN);
        private long count;

        TokenSpill(Path file) throws IOException {
            channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        }

        void append(int[] tokens) throws IOException {
            for (int token : tokens) {
                if (!buffer.hasRemaining()) {
                    flush();
                }
                buffer.putInt(token);
            }
            count += tokens.length;
        }

        long count() {
            return count;
        }

        private void flush() throws IOException {
            buffer.flip();
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
            buffer.clear();
        }

        @Override
        public void close() throws IOException {
            try {
                flush();
            } finally {
                channel.close();
            }
        }
    }
}
