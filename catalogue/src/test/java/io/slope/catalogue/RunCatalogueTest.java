package io.slope.catalogue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.catalogue.RunCatalogue.Admission;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.RunOptions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The run catalogue on a real, migrated Postgres: a run's states, its events and its stage results. */
class RunCatalogueTest {
    private static RunCatalogue catalogue;
    private static ResolvedSpec spec;

    @BeforeAll
    static void database() {
        Database db = new Database(TestServices.get().postgres().createDatabase("catalogue_test"),
                Duration.ofSeconds(60));
        db.migrate();
        catalogue = new RunCatalogue(db);
        spec = RunSpecCodec.parseResolved("{\"name\": \"tiny\", \"data\": {\"corpus\": [\"/corpus.txt\"]}}");
    }

    @Test
    void aRunGoesFromQueuedThroughItsStagesToFinishedAndStaysFinished() throws Exception {
        UUID id = newRun();
        catalogue.createRun(id, "someone else", spec, "run-" + id); // idempotent on the id
        RunRow queued = catalogue.run(id).orElseThrow();
        assertEquals("QUEUED", queued.status().name());
        assertEquals("tester", queued.owner());

        catalogue.markStage(id, Stage.SPARSE_PHASE, "RUNNING");
        catalogue.markStage(id, Stage.SPARSE_PHASE, "RUNNING"); // no second event for the same state
        assertEquals("RUNNING", catalogue.run(id).orElseThrow().status().name());
        assertEquals("sparsePhase", catalogue.run(id).orElseThrow().stage());
        assertTrue(unfinished(id), "a RUNNING run is one the reconciler looks at");

        catalogue.finish(id, "FAILED", "boom");
        catalogue.finish(id, "SUCCEEDED", null);
        catalogue.markStage(id, Stage.MERGE, "RUNNING");
        RunRow failed = catalogue.run(id).orElseThrow();
        assertEquals("FAILED", failed.status().name(), "a finished run stays as it finished");
        assertEquals("boom", failed.error());
        assertEquals("sparsePhase", failed.stage());
        assertEquals(List.of("INFO stage sparsePhase: RUNNING", "ERROR run FAILED: boom"), catalogue.events(id));
        assertFalse(unfinished(id));

        assertTrue(catalogue.requeue(id, Stage.MERGE, Admission.NONE));
        RunRow requeued = catalogue.run(id).orElseThrow();
        assertEquals("QUEUED", requeued.status().name());
        assertEquals(null, requeued.error());
        assertEquals("INFO retry from stage merge requested", catalogue.events(id).getLast());
        assertTrue(unfinished(id));
    }

    @Test
    void stageResultsComeBackAsStoredTheLastOfAStageWinning() throws Exception {
        UUID id = newRun();
        catalogue.saveStageResult(id, StageResult.output(Stage.MERGE, "runs/" + id + "/merge/", Map.of("x", 1.0)));
        StageResult again = StageResult.output(Stage.MERGE, "runs/" + id + "/merge/", Map.of("x", 2.0));
        catalogue.saveStageResult(id, again);
        StageResult eval = StageResult.output(Stage.EVAL, "runs/" + id + "/eval/", Map.of("val_loss", 3.5));
        catalogue.saveStageResult(id, eval);

        assertEquals(Map.of(Stage.MERGE, again, Stage.EVAL, eval), catalogue.stageResults(id));
    }

    @Test
    void anUnfinishedRunWithoutStoredOptionsTakesTheDefaults() throws Exception {
        UUID id = newRun();
        RunRow run = catalogue.unfinishedRuns().stream().filter(r -> r.id().equals(id))
                .findFirst().orElseThrow();
        assertEquals("run-" + id, run.workflowId());
        assertEquals(RunOptions.DEFAULT, run.options().resolve(RunOptions.DEFAULT));
    }

    @Test
    void onlyAFinishedRunIsRequeuedSoARacingRetryChangesNothing() throws Exception {
        UUID id = newRun();
        assertFalse(catalogue.requeue(id, Stage.MERGE, Admission.NONE), "a QUEUED run has not finished");
        catalogue.markStage(id, Stage.SPARSE_PHASE, "RUNNING");
        assertFalse(catalogue.requeue(id, Stage.MERGE, Admission.NONE), "a RUNNING run has not finished");
        assertEquals(List.of("INFO stage sparsePhase: RUNNING"), catalogue.events(id), "no retry event either");

        catalogue.finish(id, "CANCELLED", null);
        assertTrue(catalogue.requeue(id, Stage.MERGE, Admission.NONE));
        assertFalse(catalogue.requeue(id, Stage.MERGE, Admission.NONE), "the second of two retries finds it QUEUED");
        assertEquals(RunStatus.QUEUED, catalogue.run(id).orElseThrow().status());
        assertEquals(1, catalogue.events(id).stream().filter(e -> e.contains("retry from stage merge")).count());
    }

    private static UUID newRun() throws Exception {
        UUID id = UUID.randomUUID();
        catalogue.createRun(id, "tester", spec, "run-" + id);
        return id;
    }

    private static boolean unfinished(UUID id) throws Exception {
        return catalogue.unfinishedRuns().stream().anyMatch(r -> r.id().equals(id));
    }
}
