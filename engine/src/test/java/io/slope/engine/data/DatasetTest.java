package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetTest {
    @TempDir
    Path dir;

    @Test
    void validationIsTheLastFractionOfTheStreamOfSeparatedDocuments() throws IOException {
        Corpus corpus = corpus("The quick brown fox.", "Jumps over the lazy dog!", "Again and again and again.");
        Tokenizer gpt2 = Gpt2BpeTokenizer.instance();
        int[] stream = concat(gpt2.encode("The quick brown fox."), new int[] {50256},
                gpt2.encode("Jumps over the lazy dog!"), new int[] {50256}, gpt2.encode("Again and again and again."));

        try (Dataset dataset = Dataset.prepare(corpus, gpt2, 0.3, 4, dir.resolve("ds"))) {
            long validationTokens = (long) Math.floor(stream.length * 0.3);
            long trainTokens = stream.length - validationTokens;
            assertEquals(trainTokens, dataset.train().length());
            assertEquals(validationTokens, dataset.validation().length());
            assertArrayEquals(java.util.Arrays.copyOfRange(stream, 0, (int) trainTokens),
                    dataset.train().read(0, (int) trainTokens));
            assertArrayEquals(java.util.Arrays.copyOfRange(stream, (int) trainTokens, stream.length),
                    dataset.validation().read(0, (int) validationTokens));

            DatasetManifest manifest = dataset.manifest();
            assertEquals("gpt2", manifest.tokenizer());
            assertEquals(50257, manifest.vocabSize());
            assertEquals(trainTokens, manifest.trainShards().stream().mapToLong(ShardInfo::tokens).sum());
            assertTrue(manifest.trainShards().stream().allMatch(s -> s.tokens() <= 4), "shards of at most 4 tokens");
            assertEquals("train-00000.tok", manifest.trainShards().getFirst().file());
            assertEquals("val-00000.tok", manifest.validationShards().getFirst().file());
            assertEquals(3, manifest.source().documents());
        }
        assertTrue(Files.exists(dir.resolve("ds").resolve("dataset.json")));
        try (var entries = Files.list(dir)) {
            assertEquals(List.of(dir.resolve("ds")), entries.toList(), "no staging folder or spill file left");
        }
    }

    @Test
    void heldOutFilesAreTheWholeValidationSplitAndEveryCorpusTokenTrains() throws IOException {
        Corpus corpus = corpus("to be", "or not");
        Corpus heldOut = corpus("that is", "the question");
        Tokenizer chars = Tokenizers.forCorpus("char", corpus, heldOut);

        try (Dataset dataset = Dataset.prepare(corpus, heldOut, chars, 4, dir.resolve("ds"))) {
            Tokenizer rebuilt = dataset.tokenizer();
            assertEquals("to be\n\nor not", rebuilt.decode(dataset.train().read(0, (int) dataset.train().length())));
            assertEquals("that is\n\nthe question",
                    rebuilt.decode(dataset.validation().read(0, (int) dataset.validation().length())));
            DatasetManifest manifest = dataset.manifest();
            assertEquals(0.0, manifest.valFraction());
            assertEquals(2, manifest.source().documents());
            assertEquals(heldOut.sha256(), manifest.heldOutSource().corpusSha256());
        }
        try (Dataset reopened = Dataset.open(dir.resolve("ds"))) {
            assertEquals(Tokenizers.describe(chars), reopened.tokenizerDescriptor(),
                    "the vocabulary covers the held-out text too ('q' is only there)");
        }
    }

    @Test
    void aFileReadAsBothTrainingAndHeldOutTextIsRefused() throws IOException {
        Path train = Files.createDirectories(dir.resolve("train"));
        Files.writeString(train.resolve("a.txt"), "some text");
        Path link = Files.createSymbolicLink(dir.resolve("b.txt"), train.resolve("a.txt"));
        Corpus corpus = Corpus.read(List.of(train));
        Corpus heldOut = Corpus.read(List.of(link));

        var e = assertThrows(InvalidCorpusException.class, () -> Dataset.prepare(corpus, heldOut,
                Gpt2BpeTokenizer.instance(), 10, dir.resolve("ds")));
        assertEquals("the held-out file " + link + " is also read as training text; list it among the held-out "
                + "files only", e.getMessage());
        assertTrue(Files.notExists(dir.resolve("ds")));
    }

    @Test
    void charDatasetDecodesWithoutTheCorpus() throws IOException {
        Corpus corpus = corpus("to be", "or not");
        Tokenizer chars = Tokenizers.forCorpus("char", corpus);
        Dataset.prepare(corpus, chars, 0.0, 1000, dir.resolve("ds")).close();

        try (Dataset reopened = Dataset.open(dir.resolve("ds"))) {
            Tokenizer rebuilt = reopened.tokenizer();
            TokenSequence train = reopened.train();
            assertEquals("to be\n\nor not", rebuilt.decode(train.read(0, (int) train.length())));
            assertEquals(0, reopened.validation().length());
        }
        assertEquals(Tokenizers.describe(chars), Tokenizers.describe(Dataset.readTokenizer(dir.resolve("ds"))),
                "the tokenizer alone, from the manifest and the first shard's header");
    }

    @Test
    void gpt2TokenizerIsReadFromTheManifestAlone() throws IOException {
        Dataset.prepare(corpus("some text"), Gpt2BpeTokenizer.instance(), 0.0, 10, dir.resolve("ds")).close();
        Files.delete(dir.resolve("ds").resolve("train-00000.tok"));
        assertEquals(Gpt2BpeTokenizer.instance(), Dataset.readTokenizer(dir.resolve("ds")));
    }

    @Test
    void sameCorpusGivesTheSameManifestChecksums() throws IOException {
        Corpus corpus = corpus("alpha beta gamma", "delta epsilon");
        Tokenizer gpt2 = Gpt2BpeTokenizer.instance();
        DatasetManifest first;
        try (Dataset a = Dataset.prepare(corpus, gpt2, 0.25, 3, dir.resolve("a"))) {
            first = a.manifest();
        }
        try (Dataset b = Dataset.prepare(corpus, gpt2, 0.25, 3, dir.resolve("b"))) {
            assertEquals(first.trainShards(), b.manifest().trainShards());
            assertEquals(first.validationShards(), b.manifest().validationShards());
            assertEquals(first.source().corpusSha256(), b.manifest().source().corpusSha256());
        }
    }

    @Test
    void shardSwappedForAnotherValidShardIsRefusedAgainstTheManifest() throws IOException {
        Tokenizer gpt2 = Gpt2BpeTokenizer.instance();
        Dataset.prepare(corpus("one text here"), gpt2, 0.0, 1000, dir.resolve("a")).close();
        Dataset.prepare(corpus("another text"), gpt2, 0.0, 1000, dir.resolve("b")).close();
        Path shard = dir.resolve("a").resolve("train-00000.tok");
        Files.copy(dir.resolve("b").resolve("train-00000.tok"), shard, StandardCopyOption.REPLACE_EXISTING);

        var e = assertThrows(InvalidTokenShardException.class, () -> Dataset.open(dir.resolve("a")));
        assertTrue(e.getMessage().startsWith(shard + ": does not match dataset.json"), e.getMessage());
    }

    @Test
    void validationShardOfAnotherVocabularyIsRefused() throws IOException {
        Corpus corpus = corpus("abcabcabcabc");
        Dataset.prepare(corpus, Tokenizers.forCorpus("char", corpus), 0.5, 1000, dir.resolve("chars")).close();
        Dataset.prepare(corpus, Gpt2BpeTokenizer.instance(), 0.5, 1000, dir.resolve("gpt2")).close();
        // Swap in the gpt2 validation shard and make the manifest agree with it, so that only the vocabulary differs.
        DatasetManifest chars;
        DatasetManifest gpt2;
        try (Dataset a = Dataset.open(dir.resolve("chars")); Dataset b = Dataset.open(dir.resolve("gpt2"))) {
            chars = a.manifest();
            gpt2 = b.manifest();
        }
        Files.copy(dir.resolve("gpt2").resolve("val-00000.tok"), dir.resolve("chars").resolve("val-00000.tok"),
                StandardCopyOption.REPLACE_EXISTING);
        DatasetManifest patched = new DatasetManifest(chars.formatVersion(), chars.tokenizer(), chars.vocabSize(),
                chars.valFraction(), chars.trainTokens(), gpt2.validationTokens(), chars.trainShards(),
                gpt2.validationShards(), chars.source(), null);
        new ObjectMapper().writeValue(dir.resolve("chars").resolve("dataset.json").toFile(), patched);

        var e = assertThrows(InvalidTokenShardException.class, () -> Dataset.open(dir.resolve("chars")));
        String expectedStart = dir.resolve("chars").resolve("val-00000.tok")
                + ": tokenizer mismatch: this shard has tokenizer gpt2 with vocabulary size 50257 but ";
        assertTrue(e.getMessage().startsWith(expectedStart), e.getMessage());
    }

    @Test
    void existingFolderIsNotOverwritten() throws IOException {
        Files.createDirectories(dir.resolve("ds"));
        var e = assertThrows(IllegalStateException.class,
                () -> Dataset.prepare(corpus("x"), Gpt2BpeTokenizer.instance(), 0.1, 10, dir.resolve("ds")));
        assertTrue(e.getMessage().contains("already exists"), e.getMessage());
    }

    @Test
    void unknownDatasetFormatVersionIsRefused() throws IOException {
        Dataset.prepare(corpus("some text"), Gpt2BpeTokenizer.instance(), 0.0, 10, dir.resolve("ds")).close();
        Path manifest = dir.resolve("ds").resolve("dataset.json");
        Files.writeString(manifest,
                Files.readString(manifest).replace("\"formatVersion\" : 1", "\"formatVersion\" : 7"));
        var e = assertThrows(InvalidTokenShardException.class, () -> Dataset.open(dir.resolve("ds")));
        assertEquals(manifest + ": dataset format version 7 is not supported; this reader knows version 1",
                e.getMessage());
    }

    static Corpus corpus(String... texts) {
        List<Corpus.Document> documents = new ArrayList<>();
        IntStream.range(0, texts.length).forEach(i -> documents.add(new Corpus.Document("doc" + i, texts[i])));
        return Corpus.of(documents);
    }

    private static int[] concat(int[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToInt(java.util.Arrays::stream).toArray();
    }
}
