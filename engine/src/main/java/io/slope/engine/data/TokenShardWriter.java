package io.slope.engine.data;

import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Streams tokens into shards {@code <prefix>-00000.tok, <prefix>-00001.tok, ...} of at most {@code tokensPerShard}
 * tokens each (format in {@link TokenShardFormat}). Each shard's content is hashed while it is written; its header is
 * written last and the file fsynced, so a shard cut short by a crash has no valid magic and is refused.
 */
public final class TokenShardWriter implements AutoCloseable {
    public static final String EXTENSION = ".tok";
    private static final int BUFFER_BYTES = 1 << 20;

    private final Path directory;
    private final String prefix;
    private final TokenizerDescriptor tokenizer;
    private final long tokensPerShard;
    private final int width;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final List<ShardInfo> finished = new ArrayList<>();

    private FileChannel channel;
    private Path currentFile;
    private MessageDigest digest;
    private long currentTokens;
    private boolean closed;

    public TokenShardWriter(Path directory, String prefix, TokenizerDescriptor tokenizer, long tokensPerShard) {
        if (tokensPerShard <= 0) {
            throw new IllegalArgumentException("tokensPerShard must be positive, got " + tokensPerShard);
        }
        this.directory = directory;
        this.prefix = prefix;
        this.tokenizer = tokenizer;
        this.tokensPerShard = tokensPerShard;
        this.width = TokenShardFormat.tokenWidth(tokenizer.vocabSize());
    }

    public void write(int[] tokens) throws IOException {
        write(tokens, 0, tokens.length);
    }

    public void write(int[] tokens, int from, int count) throws IOException {
        if (closed) {
            throw new IllegalStateException("the writer is finished");
        }
        int vocabSize = tokenizer.vocabSize();
        for (int i = from; i < from + count; i++) {
            int token = tokens[i];
            if (token < 0 || token >= vocabSize) {
                throw new IllegalArgumentException("token id " + token + " outside the vocabulary [0, " + vocabSize
                        + ")");
            }
            if (channel == null) {
                startShard();
            }
            if (buffer.remaining() < width) {
                flush();
            }
            if (width == 2) {
                buffer.putShort((short) token);
            } else {
                buffer.putInt(token);
            }
            if (++currentTokens == tokensPerShard) {
                finishShard();
            }
        }
    }

    /** Completes the last shard and returns all shards written, in order; an empty list when no token came. */
    public List<ShardInfo> finish() throws IOException {
        if (!closed) {
            if (channel != null) {
                finishShard();
            }
            closed = true;
        }
        return List.copyOf(finished);
    }

    /** Without {@link #finish()}, abandons the shard in progress and deletes it; finished shards are kept. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        if (channel != null) {
            channel.close();
            Files.deleteIfExists(currentFile);
            channel = null;
        }
    }

    private void startShard() throws IOException {
        currentFile = directory.resolve(String.format("%s-%05d%s", prefix, finished.size(), EXTENSION));
        channel = FileChannel.open(currentFile, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        channel.position(TokenShardFormat.headerLength(tokenizer));
        digest = DurableFiles.newSha256();
        digest.update(TokenShardFormat.describedTokenizer(tokenizer));
        currentTokens = 0;
    }

    private void flush() throws IOException {
        buffer.flip();
        digest.update(buffer.duplicate());
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
        buffer.clear();
    }

    private void finishShard() throws IOException {
        flush();
        byte[] sha256 = digest.digest();
        ByteBuffer header = new TokenShardFormat(tokenizer, currentTokens, sha256).encode();
        long position = 0;
        while (header.hasRemaining()) {
            position += channel.write(header, position);
        }
        channel.force(true);
        channel.close();
        channel = null;
        finished.add(new ShardInfo(currentFile.getFileName().toString(), currentTokens,
                HexFormat.of().formatHex(sha256)));
    }
}
