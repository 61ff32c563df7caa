package io.slope.activities.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.activities.Fixtures;
import io.slope.activities.data.CorpusSource;
import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
import io.slope.engine.data.DatasetManifest;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.storage.ObjectStore;
import io.temporal.failure.ApplicationFailure;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The pipeline queue's activities against real Postgres and S3: data preparation, bookkeeping and finalize. */
class PipelineActivitiesImplTest {
    private static final byte[] WEIGHTS = "weights".getBytes(StandardCharsets.UTF_8);

    @TempDir
    Path dir;

    private static RunCatalogue catalogue;
    private static ObjectStore objects;
    private PipelineActivitiesImpl activities;

    @BeforeAll
    static void servers() {
        catalogue = Fixtures.catalogue("pipeline_test");
        objects = Fixtures.objectStore("pipeline");
    }

    @BeforeEach
    void activities() {
        activities = new PipelineActivitiesImpl(catalogue, objects, new DatasetStore(objects, 1000),
                new CorpusSource(objects, dir), dir.resolve("scratch"));
    }

    @Test
    void preparedDataIsTheRunsDatasetAndAReadTwiceCorpusIsReused() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "It was the best of times, it was the worst of times.\n"
                .repeat(50));
        UUID first = Fixtures.newRun(catalogue, Fixtures.tinySpec("corpus.txt"));
        StageResult data = activities.prepareData(first.toString(), Fixtures.tinySpec("corpus.txt"));
        activities.saveStageResult(first.toString(), data);
        assertEquals(data.datasetId(), catalogue.run(first).orElseThrow().datasetId());
        assertTrue(catalogue.events(first).getLast().startsWith("INFO prepared dataset " + data.datasetId()),
                catalogue.events(first).toString());

        UUID second = Fixtures.newRun(catalogue, Fixtures.tinySpec("corpus.txt"));
        assertEquals(data, activities.prepareData(second.toString(), Fixtures.tinySpec("corpus.txt")));
        assertTrue(catalogue.events(second).getLast().startsWith("INFO reused dataset " + data.datasetId()));
    }

    @Test
    void aMissingCorpusFailsTheRunWithoutRetrying() throws Exception {
        UUID id = Fixtures.newRun(catalogue, Fixtures.tinySpec("missing.txt"));
        ApplicationFailure e = assertThrows(ApplicationFailure.class,
                () -> activities.prepareData(id.toString(), Fixtures.tinySpec("missing.txt")));
        assertTrue(e.isNonRetryable());
        assertTrue(e.getOriginalMessage().startsWith("data.corpus: "), e.getOriginalMessage());
    }

    /** data.validation from S3, as data.corpus is read: the held-out objects are the dataset's validation split. */
    @Test
    void heldOutFilesFromS3AreTheValidationSplit() throws Exception {
        String train = "It was the best of times, it was the worst of times.\n".repeat(50);
        String held = "It was the age of wisdom, it was the age of foolishness.\n".repeat(10);
        objects.putBytes("books/train/dickens.txt", train.getBytes(StandardCharsets.UTF_8));
        objects.putBytes("books/held-out/dickens-2.txt", held.getBytes(StandardCharsets.UTF_8));
        var spec = Fixtures.tinySpec("s3://pipeline/books/train/", "s3://pipeline/books/held-out/");
        UUID id = Fixtures.newRun(catalogue, spec);

        StageResult data = activities.prepareData(id.toString(), spec);

        assertEquals((double) held.length(), data.values().get("validationTokens"), "exactly the held-out text");
        DatasetManifest manifest = new DatasetStore(objects, 1000).manifest(data.datasetId()).orElseThrow();
        assertEquals(0.0, manifest.valFraction());
        assertEquals(1, manifest.heldOutSource().documents());
        Map<String, Object> row = datasetRow(data.datasetId());
        assertEquals(0.0, row.get("val_fraction"));
        assertEquals(manifest.source().corpusSha256(), row.get("corpus_sha256"));
        assertEquals((long) held.length(), row.get("validation_tokens"));
        assertEquals(manifest.heldOutSource().corpusSha256(), row.get("held_out_sha256"));
        assertTrue(catalogue.events(id).getLast().startsWith("INFO prepared dataset " + data.datasetId()),
                catalogue.events(id).toString());
        assertTrue(catalogue.events(id).getLast().contains("held out: "), catalogue.events(id).toString());

        // The same corpus with the held-out fraction is another dataset; the same held-out files again are reused.
        UUID fraction = Fixtures.newRun(catalogue, Fixtures.tinySpec("s3://pipeline/books/train/"));
        assertNotEquals(data.datasetId(), activities.prepareData(fraction.toString(),
                Fixtures.tinySpec("s3://pipeline/books/train/")).datasetId());
        UUID again = Fixtures.newRun(catalogue, spec);
        assertEquals(data, activities.prepareData(again.toString(), spec));
        assertTrue(catalogue.events(again).getLast().startsWith("INFO reused dataset " + data.datasetId()));
    }

    @Test
    void aBadHeldOutEntryFailsTheRunNamingIt() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "It was the best of times, it was the worst of times.\n"
                .repeat(50));
        objects.putBytes("shelf/a.txt", "It was the age of wisdom.\n".repeat(20).getBytes(StandardCharsets.UTF_8));
        assertEquals("data.validation: data.validation[0]: s3://pipeline/no/such.txt does not exist",
                failure(Fixtures.tinySpec("corpus.txt", "s3://pipeline/no/such.txt")));
        assertTrue(failure(Fixtures.tinySpec("corpus.txt", "missing.txt"))
                .startsWith("data.validation: data.validation[0]: missing.txt does not exist"));
        // Held-out text that the corpus reads too: an object under a corpus prefix, a local file inside a corpus
        // folder.
        assertEquals("data.validation: data.validation[0]: s3://pipeline/shelf/a.txt is also read by data.corpus[0] "
                + "(s3://pipeline/shelf/); held-out text must not be trained on, so list it in one of the two only",
                failure(Fixtures.tinySpec("s3://pipeline/shelf/", "s3://pipeline/shelf/a.txt")));
        Files.createDirectories(dir.resolve("books"));
        Files.writeString(dir.resolve("books/one.txt"), "It was the season of Light.\n".repeat(30));
        String inside = failure(Fixtures.tinySpec("books", "books/one.txt"));
        assertTrue(inside.startsWith("data.validation: the held-out file ") && inside.contains("also read as "
                + "training text"), inside);
    }

    private String failure(io.slope.spec.ResolvedSpec spec) throws Exception {
        UUID id = Fixtures.newRun(catalogue, spec);
        ApplicationFailure e = assertThrows(ApplicationFailure.class,
                () -> activities.prepareData(id.toString(), spec));
        assertTrue(e.isNonRetryable());
        assertEquals("InvalidCorpus", e.getType());
        return e.getOriginalMessage();
    }

    /** The catalogue's row of a dataset, with its manifest's held-out sha256 as held_out_sha256. */
    private static Map<String, Object> datasetRow(String id) throws Exception {
        List<Map<String, Object>> rows = catalogue.database().query("SELECT val_fraction, corpus_sha256, "
                + "validation_tokens, manifest -> 'heldOutSource' ->> 'corpusSha256' FROM datasets WHERE id = ?",
                rs -> Map.of("val_fraction", rs.getDouble(1), "corpus_sha256", rs.getString(2),
                        "validation_tokens", rs.getLong(3), "held_out_sha256", String.valueOf(rs.getString(4))),
                id);
        assertEquals(1, rows.size(), "dataset " + id + " in the catalogue");
        return rows.getFirst();
    }

    @Test
    void finalizeRegistersTheExportedFilesThatMatchTheirManifest() throws Exception {
        UUID id = Fixtures.newRun(catalogue, Fixtures.tinySpec("corpus.txt"));
        String prefix = ExportManifest.prefix(id.toString());
        objects.putBytes(prefix + "hf/model.safetensors", WEIGHTS);
        objects.putBytes(prefix + ExportManifest.NAME, new ExportManifest(List.of(new ExportManifest.File(
                "hf/model.safetensors", "hf", WEIGHTS.length, sha256(WEIGHTS)))).toJson());

        StageResult result = activities.finalizeRun(id.toString(), Map.of());

        assertEquals(Stage.FINALIZE, result.stage());
        assertEquals(List.of(new RunCatalogue.Artifact("hf/model.safetensors", "hf", prefix + "hf/model.safetensors",
                WEIGHTS.length, sha256(WEIGHTS))), catalogue.artifacts(id));
    }

    @Test
    void finalizeRefusesAnExportThatDiffersFromItsManifest() throws Exception {
        UUID id = Fixtures.newRun(catalogue, Fixtures.tinySpec("corpus.txt"));
        String prefix = ExportManifest.prefix(id.toString());
        objects.putBytes(prefix + "hf/model.safetensors", "tampered".getBytes(StandardCharsets.UTF_8));
        objects.putBytes(prefix + ExportManifest.NAME, new ExportManifest(List.of(new ExportManifest.File(
                "hf/model.safetensors", "hf", WEIGHTS.length, sha256(WEIGHTS)))).toJson());

        ApplicationFailure e = assertThrows(ApplicationFailure.class,
                () -> activities.finalizeRun(id.toString(), Map.of()));
        assertEquals("CorruptExport", e.getType());
        assertTrue(e.isNonRetryable());
        assertEquals(List.of(), catalogue.artifacts(id), "nothing registered");
    }

    private String sha256(byte[] content) throws Exception {
        Path file = Files.write(dir.resolve("hash-" + System.nanoTime()), content);
        return PipelineActivitiesImpl.sha256(file);
    }
}
