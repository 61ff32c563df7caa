package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A corpus several times larger than the heap prepares: the preparation streams the text (issue 17). The whole-text
 * reading held the file's bytes, its decoded text and an int per character: in this heap it failed at once with
 * OutOfMemoryError in Files.readAllBytes (measured on the 256 MiB corpus before the change).
 */
class CorpusMemoryTest {
    private static final String HEAP = "-Xmx64m";

    @TempDir
    Path dir;

    @Test
    void aCorpusFourTimesTheHeapPreparesWithTheCharTokenizer() throws Exception {
        long codePoints = writeCorpus(dir.resolve("big.txt"), 256L << 20, new Random(3));
        String out = prepareInChildJvm(dir.resolve("big.txt"), "char");
        assertTrue(out.startsWith("tokens " + codePoints + " "), "a token per code point: " + out);
    }

    @Test
    void aCorpusLargerThanTheHeapPreparesWithTheGpt2Tokenizer() throws Exception {
        writeCorpus(dir.resolve("big.txt"), 96L << 20, new Random(4));
        String out = prepareInChildJvm(dir.resolve("big.txt"), "gpt2");
        assertTrue(out.startsWith("tokens "), out);
    }

    /** Writes about {@code bytes} of text (multi-byte UTF-8 throughout) and returns its number of code points. */
    private static long writeCorpus(Path file, long bytes, Random random) throws IOException {
        String[] blocks = new String[16];
        for (int i = 0; i < blocks.length; i++) {
            blocks[i] = DatasetFingerprintTest.randomText(random, 1 << 16).replace("<|endoftext|>", "");
        }
        long codePoints = 0;
        long written = 0;
        try (OutputStream stream = Files.newOutputStream(file)) {
            while (written < bytes) {
                String block = blocks[random.nextInt(blocks.length)];
                byte[] encoded = block.getBytes(StandardCharsets.UTF_8);
                stream.write(encoded);
                written += encoded.length;
                codePoints += block.codePointCount(0, block.length());
            }
        }
        return codePoints;
    }

    private String prepareInChildJvm(Path corpus, String tokenizer) throws Exception {
        Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                HEAP, "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                PrepareProcess.class.getName(), corpus.toString(), dir.resolve("ds").toString(), tokenizer)
                .redirectErrorStream(true)
                .start();
        String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertTrue(child.waitFor(2, TimeUnit.MINUTES), "the preparation ends");
        assertEquals(0, child.exitValue(), "the preparation in " + HEAP + " succeeds: " + out);
        System.out.println(tokenizer + ", " + Files.size(corpus) / (1 << 20) + " MiB corpus in " + HEAP + ": " + out);
        return out;
    }
}
