package io.slope.gpuworker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.catalogue.reconcile.Reconciler;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import io.slope.workflows.run.SlopeRunWorkflow;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Runs that Postgres lists as unfinished but that have no live workflow are started again and finish exactly. */
class ReconcilerEndToEndTest {
    private static final int STEPS = 40;
    private static PipelineHarness harness;
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() throws Exception {
        harness = new PipelineHarness("e2e_reconcile");
        harness.startGpuWorker();
    }

    @AfterAll
    static void stop() {
        harness.close();
    }

    @Test
    void runsWithoutALiveWorkflowAreStartedAgainAndResumeFromTheirCheckpoints() throws Exception {
        ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), STEPS);
        RunOptions options = new RunOptions(8, 5, 2, 0);
        // A run whose workflow vanished mid-phase (as when Temporal's database is lost): terminated, so nothing in
        // the workflow records its end, and Postgres still says RUNNING.
        UUID lost = harness.submit(spec, options);
        PipelineHarness.await("checkpoint 10", Duration.ofMinutes(4), () -> harness.latestStep(lost) >= 10);
        harness.client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(lost.toString()))
                .terminate("simulated loss of the Temporal database");
        assertEquals("RUNNING", harness.catalogue.run(lost).orElseThrow().status().name());
        // A run the API registered but never started (it died in between).
        UUID neverStarted = UUID.randomUUID();
        harness.catalogue.createRun(neverStarted, "tester", spec, SlopeRunWorkflow.workflowId(neverStarted
                .toString()));

        Reconciler reconciler = new Reconciler(harness.client, harness.catalogue, options);
        assertEquals(Set.of(lost, neverStarted), Set.copyOf(reconciler.reconcile()));
        assertEquals(List.of(), reconciler.reconcile(), "both are live now: nothing is started twice");

        for (UUID id : List.of(lost, neverStarted)) {
            RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(6));
            assertEquals("SUCCEEDED", outcome.status());
            assertEquals("SUCCEEDED", harness.catalogue.run(id).orElseThrow().status().name());
        }
        assertTrue(harness.catalogue.events(lost).stream().anyMatch(e -> e.contains("started again from stage "
                + "sparsePhase")), harness.catalogue.events(lost).toString());
        String datasetId = harness.catalogue.stageResults(lost).get(Stage.PREPARE_DATA).datasetId();
        var reference = harness.uninterrupted(spec, datasetId);
        for (UUID id : List.of(lost, neverStarted)) {
            assertEquals(reference.checkpoint().tensors(), harness.finalCheckpoint(id, STEPS).checkpoint().tensors());
        }
    }
}
