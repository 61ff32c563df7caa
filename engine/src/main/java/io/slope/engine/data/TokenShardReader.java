package io.slope.engine.data;

import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * A token shard, memory-mapped. {@link #open} checks the whole file before anything is read from it: magic, version,
 * header consistency, exact file length and the content SHA-256, each failure an {@link InvalidTokenShardException}
 * naming the file and the problem. Thread-safe; closing unmaps the file.
 */
public final class TokenShardReader implements TokenSequence, AutoCloseable {
    private static final ValueLayout.OfShort UINT16 =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long HASH_CHUNK_BYTES = 1 << 24;

    private final Path file;
    private final TokenShardFormat format;
    private final Arena arena;
    private final MemorySegment payload;

    private TokenShardReader(Path file, TokenShardFormat format, Arena arena, MemorySegment payload) {
        this.file = file;
        this.format = format;
        this.arena = arena;
        this.payload = payload;
    }

    public static TokenShardReader open(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            ByteBuffer start = ByteBuffer.allocate((int) Math.min(size, TokenShardFormat.FIXED_BYTES));
            readFully(channel, start, 0);
            TokenShardFormat format = TokenShardFormat.decode(file, size, start, bytes -> {
                ByteBuffer rest = ByteBuffer.allocate(bytes);
                readFully(channel, rest, TokenShardFormat.FIXED_BYTES);
                return rest.flip();
            });
            long headerLength = TokenShardFormat.headerLength(format.tokenizer());
            Arena arena = Arena.ofShared();
            try {
                MemorySegment content = channel.map(FileChannel.MapMode.READ_ONLY, TokenShardFormat.FIXED_BYTES,
                        size - TokenShardFormat.FIXED_BYTES, arena);
                byte[] actual = sha256(content);
                if (!Arrays.equals(actual, format.contentSha256())) {
                    throw new InvalidTokenShardException(file, "checksum mismatch: the content's sha256 is "
                            + HexFormat.of().formatHex(actual) + " but the header records "
                            + HexFormat.of().formatHex(format.contentSha256()));
                }
                MemorySegment payload = content.asSlice(headerLength - TokenShardFormat.FIXED_BYTES);
                return new TokenShardReader(file, format, arena, payload);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }
    }

    public Path file() {
        return file;
    }

    public TokenizerDescriptor tokenizer() {
        return format.tokenizer();
    }

    public int tokenWidth() {
        return format.tokenWidth();
    }

    /** The content SHA-256 (hex): of every byte from offset 64 on, tokenizer description and tokens. */
    public String contentSha256() {
        return HexFormat.of().formatHex(format.contentSha256());
    }

    @Override
    public long length() {
        return format.tokenCount();
    }

    public int get(long index) {
        java.util.Objects.checkIndex(index, length());
        return format.tokenWidth() == 2
                ? Short.toUnsignedInt(payload.get(UINT16, index * 2))
                : payload.get(INT32, index * 4);
    }

    @Override
    public void read(long from, int[] destination, int offset, int count) {
        java.util.Objects.checkFromIndexSize(from, count, length());
        if (format.tokenWidth() == 4) {
            MemorySegment.copy(payload, INT32, from * 4, destination, offset, count);
            return;
        }
        for (int i = 0; i < count; i++) {
            destination[offset + i] = Short.toUnsignedInt(payload.get(UINT16, (from + i) * 2));
        }
    }

    @Override
    public void close() {
        arena.close();
    }

    private static byte[] sha256(MemorySegment content) {
        MessageDigest digest = DurableFiles.newSha256();
        for (long offset = 0; offset < content.byteSize(); offset += HASH_CHUNK_BYTES) {
            long length = Math.min(HASH_CHUNK_BYTES, content.byteSize() - offset);
            digest.update(content.asSlice(offset, length).asByteBuffer());
        }
        return digest.digest();
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, long position) throws IOException {
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer, position + buffer.position());
            if (n < 0) {
                throw new IOException("unexpected end of file in a file whose size was checked");
            }
        }
    }
}
