package io.slope.engine.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Token shards read end to end as one sequence. Opening checks every shard (see {@link TokenShardReader#open}) and
 * that all of them were written with the same tokenizer, so ids mean the same thing throughout.
 */
public final class ShardedTokens implements TokenSequence, AutoCloseable {
    private final List<TokenShardReader> shards;
    /** starts[i] is the position of shard i's first token; starts[size] is the total length. */
    private final long[] starts;
    private final TokenizerDescriptor tokenizer;

    private ShardedTokens(List<TokenShardReader> shards, TokenizerDescriptor tokenizer) {
        this.shards = List.copyOf(shards);
        this.tokenizer = tokenizer;
        this.starts = new long[shards.size() + 1];
        for (int i = 0; i < shards.size(); i++) {
            starts[i + 1] = starts[i] + shards.get(i).length();
        }
    }

    /** Opens the files in order; they must share the first one's tokenizer. At least one file is needed. */
    public static ShardedTokens open(List<Path> files) throws IOException {
        if (files.isEmpty()) {
            throw new IllegalArgumentException("no shard files given");
        }
        return open(files, null, null);
    }

    /**
     * Opens the files in order; each must have been written with {@code expected}, which {@code expectedSource}
     * names in error messages. An empty list gives an empty sequence.
     */
    public static ShardedTokens open(List<Path> files, TokenizerDescriptor expected, String expectedSource)
            throws IOException {
        List<TokenShardReader> readers = new ArrayList<>();
        try {
            TokenizerDescriptor tokenizer = expected;
            String tokenizerSource = expectedSource;
            for (Path file : files) {
                TokenShardReader reader = TokenShardReader.open(file);
                readers.add(reader);
                if (tokenizer == null) {
                    tokenizer = reader.tokenizer();
                    tokenizerSource = file.toString();
                } else if (!tokenizer.equals(reader.tokenizer())) {
                    throw new InvalidTokenShardException(file, "tokenizer mismatch: " + difference(
                            reader.tokenizer(), tokenizer, tokenizerSource));
                }
            }
            return new ShardedTokens(readers, tokenizer);
        } catch (IOException | RuntimeException e) {
            readers.forEach(TokenShardReader::close);
            throw e;
        }
    }

    public TokenizerDescriptor tokenizer() {
        return tokenizer;
    }

    public List<TokenShardReader> shards() {
        return shards;
    }

    @Override
    public long length() {
        return starts[shards.size()];
    }

    @Override
    public void read(long from, int[] destination, int offset, int count) {
        Objects.checkFromIndexSize(from, count, length());
        int shard = shardOf(from);
        long position = from;
        int done = 0;
        while (done < count) {
            while (position >= starts[shard + 1]) {
                shard++;
            }
            int n = (int) Math.min(count - done, starts[shard + 1] - position);
            shards.get(shard).read(position - starts[shard], destination, offset + done, n);
            done += n;
            position += n;
        }
    }

    @Override
    public void close() {
        shards.forEach(TokenShardReader::close);
    }

    /** The last shard starting at or before {@code position}. */
    private int shardOf(long position) {
        int low = 0;
        int high = shards.size() - 1;
        while (low < high) {
            int middle = (low + high + 1) >>> 1;
            if (starts[middle] <= position) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        return low;
    }

    private static String difference(TokenizerDescriptor actual, TokenizerDescriptor expected, String source) {
        if (actual.kind().equals(expected.kind()) && actual.vocabSize() == expected.vocabSize()) {
            return "this shard's character vocabulary differs from that of " + source
                    + " (same size " + actual.vocabSize() + ", other characters)";
        }
        return "this shard has tokenizer " + actual.kind() + " with vocabulary size " + actual.vocabSize()
                + " but " + source + " has " + expected.kind() + " with vocabulary size " + expected.vocabSize();
    }
}
