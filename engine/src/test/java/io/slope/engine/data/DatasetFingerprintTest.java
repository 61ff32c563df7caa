package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Datasets are content addressed, so the shards, their checksums and the corpus hash must never change for a given
 * corpus. The expected fingerprints were recorded with the whole-text preparation (commit 69799ce: each file read into
 * one String, each document encoded whole), before corpora were streamed; the corpora mix multi-byte UTF-8, Unicode
 * white space, contractions, CJK text without spaces and JSON lines, and are large enough to cross every read buffer
 * and encoding chunk many times.
 */
class DatasetFingerprintTest {
    private static final Map<String, String> EXPECTED = Map.of(
            "plain/char", "07884a3c8b7113d0708a6a05b9b678dae13eb2ce78b37b4ed0b86e60a1df91cf",
            "plain/gpt2", "f882b9f7770ffdd5f4d1bc7fd008de32640cb5e979206bf2b8cde58026071d49",
            "folder/char", "494d714adb6fefa34f089d78227711de6303f994ce7938ba4eb1259fd6df0b67",
            "folder/gpt2", "a47f3a7e8bb3b4253787bc839bb6cd1389b8dc5615711b5b9aa515570c8e90cb");

    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"plain, char", "plain, gpt2", "folder, char", "folder, gpt2"})
    void preparationOutputIsUnchanged(String corpusKind, String tokenizer) throws IOException {
        Path root = dir.resolve("corpus");
        List<Path> paths = corpusKind.equals("plain") ? List.of(plainCorpus(root)) : List.of(folderCorpus(root));
        Corpus corpus = Corpus.read(paths);
        Path out = dir.resolve("ds");
        Dataset.prepare(corpus, Tokenizers.forCorpus(tokenizer, corpus), 0.1, 150_000, out).close();
        assertEquals(EXPECTED.get(corpusKind + "/" + tokenizer), fingerprint(out, root));
    }

    /** One text file of about 3 MB: every read buffer and chunk boundary falls somewhere in it. */
    static Path plainCorpus(Path root) throws IOException {
        Files.createDirectories(root);
        return Files.writeString(root.resolve("big.txt"), randomText(new Random(17), 3_000_000));
    }

    /** Nested files, a BOM, an empty file, JSON lines (one with an escaped lone surrogate), binary and hidden files. */
    static Path folderCorpus(Path root) throws IOException {
        Random random = new Random(29);
        Files.createDirectories(root.resolve("a/b"));
        Files.createDirectories(root.resolve(".git"));
        Files.writeString(root.resolve("a/one.txt"), "\uFEFF" + randomText(random, 400_000));
        Files.writeString(root.resolve("a/b/two.md"), randomText(random, 1_200_000));
        Files.writeString(root.resolve("a/empty.txt"), "");
        Files.writeString(root.resolve(".git/config"), "hidden");
        Files.write(root.resolve("a/blob.bin"), new byte[] {'a', 0, 'b'});
        Files.write(root.resolve("a/latin1.txt"), new byte[] {'c', 'a', 'f', (byte) 0xE9});
        StringBuilder jsonl = new StringBuilder("\uFEFF");
        for (int i = 0; i < 300; i++) {
            String text = randomText(random, random.nextInt(4000));
            jsonl.append(com.fasterxml.jackson.databind.json.JsonMapper.builder().build().writeValueAsString(
                    Map.of("text", text))).append(i % 7 == 0 ? "\r\n" : "\n");
            if (i % 50 == 0) {
                jsonl.append("   \n");
            }
        }
        jsonl.append("{\"text\": \"lone \\ud800 surrogate\"}\n{\"text\": \"\"}\n");
        Files.writeString(root.resolve("c.jsonl"), jsonl.toString());
        Files.writeString(root.resolve("d.txt"), "no newline at the end, \u4e2d\u6587");
        return root;
    }

    private static final String[] PIECES = {"the", " the", " quick", " fox", "don", "'t", "'s", "'ll", "'", "  ", " ",
        "\n", "\n\n", "\t", "\r\n", "\u00A0", "\u3000", "\u2028", "\u0085", "\u001C", "\u4e2d\u6587\u5b57", "\u3002",
        "\uff0c", "\u00e9t\u00e9", "e\u0301", "\uD83D\uDE00", "\uD835\uDC00", "123", "4", "\u00bd", "...", "!", "(x)",
        "__init__", "Zo\u00eb", "\u0645\u0631\u062d\u0628\u0627", " \u0434\u0430", "<|endoftext|>", "x"};

    /** Text of about {@code chars} UTF-16 units drawn from pieces that stress GPT-2's pre-tokenizer. */
    static String randomText(Random random, int chars) {
        StringBuilder text = new StringBuilder(chars + 16);
        while (text.length() < chars) {
            text.append(PIECES[random.nextInt(PIECES.length)]);
        }
        return text.toString();
    }

    /** The shards' bytes and everything in dataset.json but the absolute paths of the corpus files. */
    static String fingerprint(Path dataset, Path corpusRoot) throws IOException {
        MessageDigest sha = DurableFiles.newSha256();
        try (Stream<Path> files = Files.list(dataset)) {
            for (Path file : files.sorted().toList()) {
                String name = file.getFileName().toString();
                sha.update(name.getBytes(StandardCharsets.UTF_8));
                String absolute = corpusRoot.toString();
                byte[] bytes = Files.readAllBytes(file);
                if (name.equals(Dataset.MANIFEST)) {
                    bytes = new String(bytes, StandardCharsets.UTF_8).replace(absolute, "<root>")
                            .getBytes(StandardCharsets.UTF_8);
                }
                sha.update(bytes);
            }
        }
        return HexFormat.of().formatHex(sha.digest());
    }
}
