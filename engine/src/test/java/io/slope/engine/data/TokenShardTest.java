package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenShardTest {
    static final TokenizerDescriptor GPT2 = Tokenizers.describe(Gpt2BpeTokenizer.instance());

    @TempDir
    Path dir;

    @Test
    void tokensRoundTripAcrossShardsOfTheConfiguredSize() throws IOException {
        int[] tokens = new SplittableRandom(1).ints(2500, 0, 50257).toArray();
        List<ShardInfo> shards = write("train", GPT2, 1000, tokens);

        assertEquals(List.of("train-00000.tok", "train-00001.tok", "train-00002.tok"),
                shards.stream().map(ShardInfo::file).toList());
        assertEquals(List.of(1000L, 1000L, 500L), shards.stream().map(ShardInfo::tokens).toList());
        try (ShardedTokens all = ShardedTokens.open(shards.stream().map(s -> dir.resolve(s.file())).toList())) {
            assertEquals(2500, all.length());
            assertArrayEquals(tokens, all.read(0, 2500));
            assertArrayEquals(Arrays.copyOfRange(tokens, 990, 2010), all.read(990, 1020), "reads spanning shards");
            assertEquals(GPT2, all.tokenizer());
            assertEquals(2, all.shards().getFirst().tokenWidth(), "uint16 for a vocabulary of 50257");
            assertEquals(shards.getFirst().sha256(), all.shards().getFirst().contentSha256());
        }
        assertEquals(80 + 2 * 1000, Files.size(dir.resolve("train-00000.tok")),
                "64 fixed + 2 + \"gpt2\" + 4 header bytes padded to 80, then two bytes a token");
    }

    @Test
    void vocabularyAbove65536UsesInt32AndKeepsTheCharVocabulary() throws IOException {
        int[] codePoints = IntStream.range(0, 70_000).map(i -> i + 0x4E00).toArray();
        TokenizerDescriptor bigChars = new TokenizerDescriptor("char", codePoints.length, codePoints);
        int[] tokens = {0, 65535, 65536, 69_999, 12};
        write("big", bigChars, 100, tokens);
        try (TokenShardReader reader = TokenShardReader.open(dir.resolve("big-00000.tok"))) {
            assertEquals(4, reader.tokenWidth());
            assertArrayEquals(tokens, reader.read(0, tokens.length));
            assertEquals(69_999, reader.get(3));
            assertEquals(bigChars, reader.tokenizer());
        }
    }

    @Test
    void writerRefusesTokensOutsideTheVocabulary() throws IOException {
        try (TokenShardWriter writer = new TokenShardWriter(dir, "x", GPT2, 10)) {
            var e = assertThrows(IllegalArgumentException.class, () -> writer.write(new int[] {5, 50257}));
            assertEquals("token id 50257 outside the vocabulary [0, 50257)", e.getMessage());
        }
        assertEquals(0, Files.list(dir).count(), "the abandoned shard is deleted");
    }

    @Test
    void truncatedPayloadIsRefused() throws IOException {
        Path shard = oneShard();
        truncate(shard, Files.size(shard) - 1);
        assertRefused(shard, "truncated: the header promises 100 tokens (280 bytes in all) but the file has 279 bytes");
    }

    @Test
    void truncatedHeaderIsRefused() throws IOException {
        Path shard = oneShard();
        truncate(shard, 40);
        assertRefused(shard, "truncated: 40 bytes, less than the 64-byte fixed header");
    }

    @Test
    void foreignFileIsRefusedByItsMagic() throws IOException {
        Path png = dir.resolve("picture.tok");
        Files.write(png, new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
                'R'});
        assertRefused(png, "not a slope token shard: it starts with bytes 89 50 4e 47 0d 0a 1a 0a,"
                + " expected the magic \"SLOPETOK\"");
    }

    @Test
    void unknownFormatVersionIsRefused() throws IOException {
        Path shard = oneShard();
        patchInt(shard, 8, 2);
        assertRefused(shard, "token shard format version 2 is not supported; this reader knows version 1");
    }

    @Test
    void flippedPayloadByteFailsTheChecksum() throws IOException {
        Path shard = oneShard();
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length - 7] ^= 0x01;
        Files.write(shard, bytes);
        var e = assertThrows(InvalidTokenShardException.class, () -> TokenShardReader.open(shard));
        assertTrue(e.getMessage().startsWith(shard + ": checksum mismatch: the content's sha256 is "), e.getMessage());
    }

    @Test
    void damagedCharVocabularyFailsTheChecksum() throws IOException {
        write("chars", new TokenizerDescriptor("char", 3, new int[] {'a', 'b', 'c'}), 100, new int[] {0, 1, 2});
        Path shard = dir.resolve("chars-00000.tok");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[64 + 2 + 4 + 4 + 4] = 'd'; // kind length, "char", code point count, 'a', then 'b' becomes 'd'
        Files.write(shard, bytes);
        var e = assertThrows(InvalidTokenShardException.class, () -> TokenShardReader.open(shard));
        assertTrue(e.getMessage().startsWith(shard + ": checksum mismatch: "), e.getMessage());
    }

    @Test
    void corruptTokenWidthIsRefused() throws IOException {
        Path shard = oneShard();
        byte[] bytes = Files.readAllBytes(shard);
        bytes[28] = 4;
        Files.write(shard, bytes);
        assertRefused(shard, "corrupt header: token width 4 for a vocabulary of 50257 (expected 2)");
    }

    @Test
    void trailingBytesAreRefused() throws IOException {
        Path shard = oneShard();
        Files.write(shard, new byte[] {0, 0}, java.nio.file.StandardOpenOption.APPEND);
        assertRefused(shard, "2 unexpected bytes after the 100 tokens the header promises");
    }

    @Test
    void shardsOfDifferentVocabulariesAreNotReadAsOneSequence() throws IOException {
        write("gpt2", GPT2, 100, new int[] {1, 2, 3});
        TokenizerDescriptor chars = new TokenizerDescriptor("char", 3, new int[] {'a', 'b', 'c'});
        write("chars", chars, 100, new int[] {0, 1, 2});
        Path second = dir.resolve("chars-00000.tok");
        var e = assertThrows(InvalidTokenShardException.class,
                () -> ShardedTokens.open(List.of(dir.resolve("gpt2-00000.tok"), second)));
        assertEquals(second + ": tokenizer mismatch: this shard has tokenizer char with vocabulary size 3 but "
                + dir.resolve("gpt2-00000.tok") + " has gpt2 with vocabulary size 50257", e.getMessage());
    }

    @Test
    void charShardsOfEqualSizeButOtherCharactersAreNotReadAsOneSequence() throws IOException {
        write("abc", new TokenizerDescriptor("char", 3, new int[] {'a', 'b', 'c'}), 100, new int[] {0});
        write("xyz", new TokenizerDescriptor("char", 3, new int[] {'x', 'y', 'z'}), 100, new int[] {0});
        var e = assertThrows(InvalidTokenShardException.class, () -> ShardedTokens.open(
                List.of(dir.resolve("abc-00000.tok"), dir.resolve("xyz-00000.tok"))));
        assertTrue(e.getMessage().contains("character vocabulary differs"), e.getMessage());
    }

    private Path oneShard() throws IOException {
        write("one", GPT2, 1000, IntStream.range(0, 100).toArray());
        return dir.resolve("one-00000.tok");
    }

    private List<ShardInfo> write(String prefix, TokenizerDescriptor tokenizer, long perShard, int[] tokens)
            throws IOException {
        try (TokenShardWriter writer = new TokenShardWriter(dir, prefix, tokenizer, perShard)) {
            int split = Math.min(7, tokens.length); // two calls, so streaming across calls is exercised
            writer.write(tokens, 0, split);
            writer.write(tokens, split, tokens.length - split);
            return writer.finish();
        }
    }

    private static void assertRefused(Path shard, String problem) {
        var e = assertThrows(InvalidTokenShardException.class, () -> TokenShardReader.open(shard));
        assertEquals(shard + ": " + problem, e.getMessage());
    }

    private static void truncate(Path file, long size) throws IOException {
        try (var channel = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.WRITE)) {
            channel.truncate(size);
        }
    }

    private static void patchInt(Path file, int offset, int value) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt(offset, value);
        Files.write(file, bytes);
    }
}
