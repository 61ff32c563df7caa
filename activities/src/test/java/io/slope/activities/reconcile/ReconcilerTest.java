package io.slope.activities.reconcile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.activities.Fixtures;
import io.slope.catalogue.RunCatalogue;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.testinfra.TestServices;
import io.slope.workflows.converter.SlopeDataConverter;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.serviceclient.WorkflowServiceStubs;
import io.temporal.serviceclient.WorkflowServiceStubsOptions;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The reconciler against the real Temporal dev server and Postgres, with no worker: a started workflow stays running,
 * which is all the reconciler asks of it.
 */
class ReconcilerTest {
    private static RunCatalogue catalogue;
    private static WorkflowClient client;

    @BeforeAll
    static void servers() {
        catalogue = Fixtures.catalogue("reconciler_test");
        WorkflowServiceStubs service = WorkflowServiceStubs.newServiceStubs(WorkflowServiceStubsOptions.newBuilder()
                .setTarget(TestServices.get().temporal().target()).build());
        client = WorkflowClient.newInstance(service, WorkflowClientOptions.newBuilder()
                .setDataConverter(SlopeDataConverter.create()).build());
    }

    @AfterAll
    static void close() {
        client.getWorkflowServiceStubs().shutdownNow();
    }

    @Test
    void runsWithoutALiveWorkflowStartAgainFromTheirFirstStageWithoutAResultAndOnlyOnce() throws Exception {
        ResolvedSpec spec = Fixtures.tinySpec("/corpus.txt");
        UUID lost = Fixtures.newRun(catalogue, spec);
        catalogue.markStage(lost, Stage.SPARSE_PHASE, "RUNNING");
        StageResult data = StageResult.output(Stage.PREPARE_DATA, "datasets/x/", Map.of());
        catalogue.saveStageResult(lost, data);
        UUID done = Fixtures.newRun(catalogue, spec);
        catalogue.finish(done, "SUCCEEDED", null);
        RunOptions options = new RunOptions(7, 5, 3, 0);

        Reconciler reconciler = new Reconciler(client, catalogue, options);
        List<UUID> restarted = reconciler.reconcile();

        assertTrue(restarted.contains(lost), restarted.toString());
        assertFalse(restarted.contains(done), "a finished run is left alone");
        WorkflowStub workflow = client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(lost.toString()));
        try {
            RunInput input = client.fetchHistory(workflow.getExecution().getWorkflowId()).getEvents().get(0)
                    .getWorkflowExecutionStartedEventAttributes().getInput().getPayloadsList().stream()
                    .map(p -> SlopeDataConverter.create().fromPayload(p, RunInput.class, RunInput.class))
                    .findFirst().orElseThrow();
            assertEquals(Stage.SPARSE_PHASE, input.fromStage());
            assertEquals(Map.of(Stage.PREPARE_DATA, data), input.earlierResults());
            assertEquals(options, input.options(), "the reconciler's options where the run stored none");
            assertTrue(catalogue.events(lost).getLast().startsWith("WARN reconciler: RUNNING run had no live "
                    + "workflow; started again from stage sparsePhase"), catalogue.events(lost).toString());

            assertFalse(reconciler.reconcile().contains(lost), "its workflow is live now: not started twice");
        } finally {
            workflow.terminate("test over");
        }
    }
}
