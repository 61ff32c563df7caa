package io.slope.activities.data;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.storage.ObjectStore;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.DatasetManifest;
import io.slope.engine.data.InvalidCorpusException;
import io.slope.engine.data.ShardInfo;
import io.slope.engine.data.Tokenizers;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Prepared datasets in the object store, content addressed: {@code datasets/<id>/} holds the token shards and, written
 * last, {@code dataset.json}. The id is a SHA-256 over the corpus text (as {@link DatasetManifest.Source} defines it),
 * the held-out split (the fraction, or the held-out files' text), the tokenizer, the shard size and the format version,
 * so preparing the same corpus the same way again finds the dataset already there and uploads nothing. Workers fetch a
 * dataset into a local cache folder and open it with {@link Dataset#open}, which verifies every shard.
 */
public final class DatasetStore {
    private static final ObjectMapper JSON = new ObjectMapper()
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private final ObjectStore objects;
    private final long tokensPerShard;

    /** A dataset in the store. {@code created} is false when it was there already. */
    public record Prepared(String id, String prefix, DatasetManifest manifest, boolean created) {}

    public DatasetStore(ObjectStore objects, long tokensPerShard) {
        this.objects = objects;
        this.tokensPerShard = tokensPerShard;
    }

    public static String prefix(String id) {
        return "datasets/" + id + "/";
    }

    /**
     * The id of a dataset whose held-out split is the last {@code valFraction} of the corpus: depends on the corpus
     * text and the preparation settings only. Stored datasets are found again by it, so this key never changes.
     */
    public String idOf(Corpus corpus, String tokenizer, double valFraction) {
        String key = "slope-dataset\nformat " + DatasetManifest.FORMAT_VERSION + "\ncorpus " + corpus.sha256()
                + "\ntokenizer " + tokenizer + "\nvalFraction " + valFraction + "\ntokensPerShard " + tokensPerShard;
        return DurableFiles.sha256Hex(key.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * The id of a dataset whose held-out split is the text of {@code heldOut} (a spec's {@code data.validation}): also
     * over that text's SHA-256, in a key whose {@code heldOut} line no fraction's key has, so neither the same corpus
     * with other held-out files nor any fraction-based dataset shares it.
     */
    public String idOf(Corpus corpus, Corpus heldOut, String tokenizer) {
        String key = "slope-dataset\nformat " + DatasetManifest.FORMAT_VERSION + "\ncorpus " + corpus.sha256()
                + "\nheldOut " + heldOut.sha256() + "\ntokenizer " + tokenizer + "\ntokensPerShard " + tokensPerShard;
        return DurableFiles.sha256Hex(key.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Prepares the corpus, holding out its last {@code valFraction}, into the store unless the same dataset is there
     * already. Shards go up first, dataset.json last, so a dataset.json in the store means a complete dataset.
     *
     * @throws InvalidCorpusException when the corpus has no usable text (retrying will not help)
     */
    public Prepared prepare(Corpus corpus, String tokenizer, double valFraction, Path scratch) throws IOException {
        return prepare(idOf(corpus, tokenizer, valFraction), scratch, dir -> Dataset.prepare(corpus,
                Tokenizers.forCorpus(tokenizer, corpus), valFraction, tokensPerShard, dir));
    }

    /**
     * As {@link #prepare(Corpus, String, double, Path)}, but the held-out split is the text of {@code heldOut} and all
     * of {@code corpus} trains ({@link Dataset#prepare(Corpus, Corpus, io.slope.engine.data.Tokenizer, long, Path)},
     * what {@code slope train} prepares for {@code data.validation}); the manifest records both sources.
     *
     * @throws InvalidCorpusException when the corpus has no usable text or a held-out file is also read as training
     *     text
     */
    public Prepared prepare(Corpus corpus, Corpus heldOut, String tokenizer, Path scratch) throws IOException {
        // Before the store is asked: a dataset of the same text found there must not hide the overlap.
        Dataset.requireDisjoint(corpus, heldOut);
        return prepare(idOf(corpus, heldOut, tokenizer), scratch, dir -> Dataset.prepare(corpus, heldOut,
                Tokenizers.forCorpus(tokenizer, corpus, heldOut), tokensPerShard, dir));
    }

    private interface Preparation {
        Dataset into(Path dir) throws IOException;
    }

    private Prepared prepare(String id, Path scratch, Preparation preparation) throws IOException {
        String prefix = prefix(id);
        Optional<DatasetManifest> existing = manifest(id);
        if (existing.isPresent()) {
            return new Prepared(id, prefix, existing.get(), false);
        }
        Path dir = Files.createDirectories(scratch).resolve("dataset-" + id + "-" + System.nanoTime());
        try {
            DatasetManifest manifest;
            try (Dataset dataset = preparation.into(dir)) {
                manifest = dataset.manifest();
            }
            List<ShardInfo> shards = new ArrayList<>(manifest.trainShards());
            shards.addAll(manifest.validationShards());
            for (ShardInfo shard : shards) {
                objects.putFile(prefix + shard.file(), dir.resolve(shard.file()));
            }
            objects.putFile(prefix + Dataset.MANIFEST, dir.resolve(Dataset.MANIFEST));
            return new Prepared(id, prefix, manifest, true);
        } finally {
            DurableFiles.deleteRecursively(dir);
        }
    }

    /** The dataset's manifest, or empty when no complete dataset of that id is in the store. */
    public Optional<DatasetManifest> manifest(String id) throws IOException {
        Optional<byte[]> json = objects.getBytes(prefix(id) + Dataset.MANIFEST);
        if (json.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(JSON.readValue(json.get(), DatasetManifest.class));
    }

    /**
     * Opens the dataset from a local cache folder, downloading it first when the cache does not hold a copy that
     * verifies. The download goes to a staging folder renamed into place, so the cache never holds half a dataset.
     */
    public Dataset fetch(String id, Path cacheRoot) throws IOException {
        Path dir = cacheRoot.resolve(id);
        if (Files.exists(dir.resolve(Dataset.MANIFEST))) {
            try {
                return Dataset.open(dir);
            } catch (RuntimeException | IOException damaged) {
                DurableFiles.deleteRecursively(dir);
            }
        }
        String prefix = prefix(id);
        if (!objects.exists(prefix + Dataset.MANIFEST)) {
            throw new IOException("dataset " + id + " is not in the store (no " + prefix + Dataset.MANIFEST + ")");
        }
        Files.createDirectories(cacheRoot);
        Path staging = Files.createTempDirectory(cacheRoot, "." + id + ".staging-");
        try {
            for (String key : objects.list(prefix)) {
                String name = key.substring(prefix.length());
                if (name.contains("/") || name.startsWith(".")) {
                    continue;
                }
                objects.download(key, staging.resolve(name));
            }
            DurableFiles.publishDirectory(staging, dir);
        } catch (IOException | RuntimeException e) {
            DurableFiles.deleteRecursively(staging);
            if (!Files.exists(dir.resolve(Dataset.MANIFEST))) {
                throw e;
            }
            // Another worker sharing this cache (the ranks of a data-parallel chunk fetch at once) published the
            // same content-addressed dataset first: use its copy.
        }
        return Dataset.open(dir);
    }
}
