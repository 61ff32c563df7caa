package io.slope.activities.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.activities.Fixtures;
import io.slope.storage.ObjectStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.InvalidCorpusException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Corpora from S3 or local paths become content-addressed datasets, prepared once and verified on fetch. */
class DatasetStoreTest {
    private static ObjectStore objects;

    @TempDir
    Path dir;

    @BeforeAll
    static void servers() {
        objects = Fixtures.objectStore("datasets");
    }

    @Test
    void preparesOnceAndFetchesVerifiedFromS3Corpus() throws Exception {
        objects.putBytes("corpora/shakespeare/a.txt", "To be, or not to be, that is the question.\n".repeat(40)
                .getBytes());
        objects.putBytes("corpora/shakespeare/b.txt", "Whether 'tis nobler in the mind to suffer.\n".repeat(40)
                .getBytes());
        CorpusSource source = new CorpusSource(objects, dir);
        DatasetStore store = new DatasetStore(objects, 1000);
        Corpus corpus = source.read(List.of("s3://datasets/corpora/shakespeare/"), dir.resolve("c1"));
        assertEquals(2, corpus.documentCount());
        DatasetStore.Prepared first = store.prepare(corpus, "char", 0.1, dir.resolve("w1"));
        assertTrue(first.created());
        // The content address of this text, as the whole-text reading defined it (SHA-256 of each document's bytes and
        // a NUL, under the settings): streaming the corpus must never move a dataset to another id.
        assertEquals("e830b018a5adf95396523e3e577077e3c54b90248f0cacf0c11935a606832039", first.id());
        assertTrue(first.manifest().trainShards().size() > 1, "several shards at 1000 tokens each");
        List<String> keys = objects.list(DatasetStore.prefix(first.id()));
        // The same text from a local copy is the same dataset: nothing is uploaded again.
        Path local = Files.createDirectories(dir.resolve("local"));
        Files.writeString(local.resolve("a.txt"), "To be, or not to be, that is the question.\n".repeat(40));
        Files.writeString(local.resolve("b.txt"), "Whether 'tis nobler in the mind to suffer.\n".repeat(40));
        DatasetStore.Prepared again = store.prepare(new CorpusSource(objects, dir).read(List.of("local"),
                dir.resolve("c2")), "char", 0.1, dir.resolve("w2"));
        assertFalse(again.created());
        assertEquals(first.id(), again.id());
        assertEquals(keys, objects.list(DatasetStore.prefix(first.id())));
        // Other settings are another dataset.
        assertFalse(first.id().equals(store.idOf(corpus, "char", 0.2)));

        try (Dataset fetched = store.fetch(first.id(), dir.resolve("cache"))) {
            assertEquals(first.manifest().trainTokens(), fetched.train().length());
        }
        // A damaged cached shard is detected and fetched again.
        Path shard = dir.resolve("cache").resolve(first.id()).resolve(first.manifest().trainShards().getFirst()
                .file());
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length - 1] ^= 1;
        Files.write(shard, bytes);
        try (Dataset fetched = store.fetch(first.id(), dir.resolve("cache"))) {
            assertEquals(first.manifest().validationTokens(), fetched.validation().length());
        }
    }

    /** The ranks of a data-parallel chunk share a worker host's cache and fetch the same dataset at the same time. */
    @Test
    void concurrentFetchesIntoOneCacheAllSucceed() throws Exception {
        Path local = Files.createDirectories(dir.resolve("shared"));
        Files.writeString(local.resolve("a.txt"), "Now is the winter of our discontent.\n".repeat(200));
        DatasetStore store = new DatasetStore(objects, 500);
        String id = store.prepare(new CorpusSource(objects, dir).read(List.of(local.toString()), dir.resolve("c")),
                "char", 0.1, dir.resolve("w")).id();
        for (int round = 0; round < 5; round++) {
            Path cache = dir.resolve("cache-" + round);
            var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
            try {
                List<java.util.concurrent.Future<Long>> fetches = new java.util.ArrayList<>();
                for (int i = 0; i < 4; i++) {
                    fetches.add(pool.submit(() -> {
                        try (Dataset d = store.fetch(id, cache)) {
                            return d.train().length();
                        }
                    }));
                }
                for (var f : fetches) {
                    assertTrue(f.get() > 0);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void unreadableCorporaAreNamed() {
        CorpusSource source = new CorpusSource(objects, dir);
        InvalidCorpusException missing = assertThrows(InvalidCorpusException.class,
                () -> source.read(List.of("s3://datasets/no/such.txt"), dir.resolve("x")));
        assertTrue(missing.getMessage().startsWith("data.corpus[0]: s3://datasets/no/such.txt does not exist"),
                missing.getMessage());
        InvalidCorpusException bucket = assertThrows(InvalidCorpusException.class,
                () -> source.read(List.of("s3://elsewhere/a.txt"), dir.resolve("y")));
        assertTrue(bucket.getMessage().contains("bucket elsewhere"), bucket.getMessage());
        InvalidCorpusException local = assertThrows(InvalidCorpusException.class,
                () -> source.read(List.of("does/not/exist.txt"), dir.resolve("z")));
        assertTrue(local.getMessage().startsWith("data.corpus[0]: does/not/exist.txt does not exist"),
                local.getMessage());
    }
}
