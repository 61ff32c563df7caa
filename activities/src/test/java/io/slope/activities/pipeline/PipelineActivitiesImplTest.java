package io.slope.activities.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.activities.Fixtures;
import io.slope.activities.data.CorpusSource;
import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
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
