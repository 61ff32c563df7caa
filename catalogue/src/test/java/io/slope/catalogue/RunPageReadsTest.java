package io.slope.catalogue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.slope.catalogue.RunCatalogue.ProgressSample;
import io.slope.catalogue.RunPageReads.Eval;
import io.slope.catalogue.RunPageReads.Event;
import io.slope.catalogue.RunPageReads.Sample;
import io.slope.catalogue.RunPageReads.Speed;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The run page's reads on a real, migrated Postgres, of rows written the way the pipeline writes them. */
class RunPageReadsTest {
    private static RunCatalogue catalogue;
    private static RunPageReads page;

    @BeforeAll
    static void database() {
        catalogue = TestCatalogue.migrated("run_page_reads_test");
        page = new RunPageReads(catalogue.database());
    }

    @Test
    void samplesPageAfterAStepAndTheSpeedComesFromTheNewest() throws Exception {
        UUID id = TestCatalogue.newRun(catalogue);
        assertEquals(Optional.empty(), page.recentSpeed(id), "no speed before the first sample");
        catalogue.recordProgress(id, List.of(new ProgressSample(1, 4.0, 0.001, 64, 320.0),
                new ProgressSample(2, 3.5, 0.002, 64, 640.0), new ProgressSample(3, 3.0, 0.003, 64, 1280.0)));

        List<Sample> after1 = page.samples(id, 1, 10);
        assertEquals(List.of(2, 3), after1.stream().map(Sample::step).toList());
        assertEquals(3.5, after1.getFirst().loss());
        assertEquals(64, after1.getFirst().tokens());
        assertEquals(List.of(2), page.samples(id, 1, 1).stream().map(Sample::step).toList());
        assertEquals(Optional.of(new Speed(1280.0, 20.0)), page.recentSpeed(id));
    }

    @Test
    void evaluationsFromAStepOnAndTheNewestOldestFirst() throws Exception {
        UUID id = TestCatalogue.newRun(catalogue);
        catalogue.recordEval(id, 4, "val_loss", 3.0);
        catalogue.recordEval(id, 8, "val_loss", 2.0);
        catalogue.recordEval(id, 8, "val_loss_sparse", 2.1);

        assertEquals(List.of(new Eval(8, "val_loss", 2.0), new Eval(8, "val_loss_sparse", 2.1)),
                page.evals(id, 8, 10));
        assertEquals(List.of(new Eval(4, "val_loss", 3.0)), page.evals(id, 0, 1));
        assertEquals(List.of(new Eval(8, "val_loss", 2.0), new Eval(8, "val_loss_sparse", 2.1)),
                page.newestEvals(id, 2));
    }

    @Test
    void theNewestEventsOldestFirstAndWhenEachStageCompleted() throws Exception {
        UUID id = TestCatalogue.newRun(catalogue);
        catalogue.markStage(id, Stage.PREPARE_DATA, "RUNNING");
        catalogue.saveStageResult(id, StageResult.output(Stage.PREPARE_DATA, "datasets/x/", Map.of()));
        catalogue.markStage(id, Stage.SPARSE_PHASE, "RUNNING");
        catalogue.event(id, "WARN", null, "something to know");

        List<Event> events = page.events(id, 2);
        assertEquals(List.of("stage sparsePhase: RUNNING", "something to know"),
                events.stream().map(Event::message).toList());
        assertEquals("sparsePhase", events.getFirst().stage());
        assertEquals("WARN", events.getLast().level());
        assertNull(events.getLast().stage(), "an event of the whole run");

        Map<String, Instant> completions = page.stageCompletions(id);
        assertEquals(Set.of("prepareData"), completions.keySet());
        assertFalse(completions.get("prepareData").isAfter(events.getLast().at()));
    }
}
