package io.slope.engine.data;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The header of a token shard (docs/formats.md, "Token shards"). All integers little-endian.
 *
 * <pre>
 * offset  size  field
 *  0       8    magic, ASCII "SLOPETOK"
 *  8       4    format version (1)
 * 12       4    header length H: the payload starts at byte H (a multiple of 8)
 * 16       8    token count N
 * 24       4    vocabulary size V
 * 28       1    token width in bytes: 2 (unsigned 16-bit) when V &lt;= 65536, else 4 (signed 32-bit)
 * 29       3    zero
 * 32      32    content SHA-256: of every byte from offset 64 to the end (tokenizer description, padding, tokens)
 * 64       2    K, length of the tokenizer kind
 * 66       K    tokenizer kind, UTF-8 ("char", "gpt2")
 * 66+K     4    C, number of code points that follow (V for "char", 0 otherwise)
 * 70+K    4·C   the char vocabulary: code point of token id i at index i, strictly increasing
 *  ...          zero padding up to H
 *  H      N·w   the tokens
 * </pre>
 */
record TokenShardFormat(TokenizerDescriptor tokenizer, long tokenCount, byte[] contentSha256) {
    static final byte[] MAGIC = "SLOPETOK".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 1;
    static final int FIXED_BYTES = 64;
    /** Far above the largest real header (every Unicode code point, about 4.5 MB); guards against corrupt lengths. */
    private static final int MAX_HEADER_BYTES = 8 << 20;

    static int tokenWidth(int vocabSize) {
        return vocabSize <= 65536 ? 2 : 4;
    }

    int tokenWidth() {
        return tokenWidth(tokenizer.vocabSize());
    }

    static int headerLength(TokenizerDescriptor tokenizer) {
        int unpadded = FIXED_BYTES + 2 + kindBytes(tokenizer).length + 4 + 4 * tokenizer.charCodePoints().length;
        return (unpadded + 7) / 8 * 8;
    }

    long fileSize() {
        return headerLength(tokenizer) + tokenCount * tokenWidth();
    }

    /**
     * Header bytes from offset 64 to H: the tokenizer description and padding. The content checksum starts with them,
     * so a damaged character vocabulary is caught like damaged tokens; the fixed fields before are each checked
     * against the others and the file length instead.
     */
    static ByteBuffer describedTokenizer(TokenizerDescriptor tokenizer) {
        return new TokenShardFormat(tokenizer, 0, new byte[32]).encode().position(FIXED_BYTES);
    }

    ByteBuffer encode() {
        byte[] kind = kindBytes(tokenizer);
        int[] codePoints = tokenizer.charCodePoints();
        int length = headerLength(tokenizer);
        ByteBuffer header = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        header.put(MAGIC).putInt(VERSION).putInt(length).putLong(tokenCount).putInt(tokenizer.vocabSize())
                .put((byte) tokenWidth()).put(new byte[3]).put(contentSha256)
                .putShort((short) kind.length).put(kind).putInt(codePoints.length);
        for (int codePoint : codePoints) {
            header.putInt(codePoint);
        }
        return header.position(0);
    }

    /**
     * Parses and checks a header. {@code start} holds the first min(fileSize, 64) bytes; {@code rest} supplies the
     * bytes from 64 up to the header length once that is known to be in the file.
     */
    static TokenShardFormat decode(Path file, long fileSize, ByteBuffer start, RestOfHeader rest)
            throws IOException {
        start.order(ByteOrder.LITTLE_ENDIAN);
        if (fileSize == 0) {
            throw new InvalidTokenShardException(file, "truncated: the file is empty");
        }
        byte[] leading = new byte[(int) Math.min(fileSize, MAGIC.length)];
        start.get(0, leading);
        if (!Arrays.equals(leading, 0, leading.length, MAGIC, 0, leading.length)) {
            throw new InvalidTokenShardException(file, "not a slope token shard: it starts with bytes "
                    + HexFormat.ofDelimiter(" ").formatHex(leading) + ", expected the magic \"SLOPETOK\"");
        }
        if (fileSize < FIXED_BYTES) {
            throw new InvalidTokenShardException(file, "truncated: " + fileSize + " bytes, less than the "
                    + FIXED_BYTES + "-byte fixed header");
        }
        int version = start.getInt(8);
        if (version != VERSION) {
            throw new InvalidTokenShardException(file, "token shard format version " + Integer.toUnsignedString(version)
                    + " is not supported; this reader knows version " + VERSION);
        }
        int headerLength = start.getInt(12);
        if (headerLength < FIXED_BYTES + 8 || headerLength % 8 != 0 || headerLength > MAX_HEADER_BYTES) {
            throw new InvalidTokenShardException(file, "corrupt header: header length " + headerLength);
        }
        if (headerLength > fileSize) {
            throw new InvalidTokenShardException(file, "truncated: the header needs " + headerLength
                    + " bytes but the file has " + fileSize);
        }
        long tokenCount = start.getLong(16);
        int vocabSize = start.getInt(24);
        int width = start.get(28);
        byte[] sha256 = new byte[32];
        start.get(32, sha256);

        ByteBuffer variable = rest.read(headerLength - FIXED_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        TokenizerDescriptor tokenizer;
        try {
            byte[] kind = new byte[Short.toUnsignedInt(variable.getShort())];
            variable.get(kind);
            int[] codePoints = new int[variable.getInt()];
            for (int i = 0; i < codePoints.length; i++) {
                codePoints[i] = variable.getInt();
            }
            tokenizer = new TokenizerDescriptor(new String(kind, StandardCharsets.UTF_8), vocabSize, codePoints);
        } catch (RuntimeException e) { // buffer underflow, negative count, or a descriptor that does not validate
            throw new InvalidTokenShardException(file, "corrupt header: tokenizer description unreadable ("
                    + e.getMessage() + ")");
        }
        if (width != tokenWidth(vocabSize)) {
            throw new InvalidTokenShardException(file, "corrupt header: token width " + width
                    + " for a vocabulary of " + vocabSize + " (expected " + tokenWidth(vocabSize) + ")");
        }
        if (headerLength != headerLength(tokenizer)) {
            throw new InvalidTokenShardException(file, "corrupt header: length " + headerLength + ", expected "
                    + headerLength(tokenizer));
        }
        if (tokenCount < 0 || tokenCount > (Long.MAX_VALUE - headerLength) / width) {
            throw new InvalidTokenShardException(file, "corrupt header: token count " + tokenCount);
        }
        TokenShardFormat format = new TokenShardFormat(tokenizer, tokenCount, sha256);
        long expectedSize = format.fileSize();
        if (fileSize < expectedSize) {
            throw new InvalidTokenShardException(file, "truncated: the header promises " + tokenCount
                    + " tokens (" + expectedSize + " bytes in all) but the file has " + fileSize + " bytes");
        }
        if (fileSize > expectedSize) {
            throw new InvalidTokenShardException(file, (fileSize - expectedSize) + " unexpected bytes after the "
                    + tokenCount + " tokens the header promises");
        }
        return format;
    }

    /** Supplies header bytes beyond the fixed 64, once their length is known. */
    interface RestOfHeader {
        ByteBuffer read(int bytes) throws IOException;
    }

    private static byte[] kindBytes(TokenizerDescriptor tokenizer) {
        return tokenizer.kind().getBytes(StandardCharsets.UTF_8);
    }
}
