package io.slope.catalogue.reconcile;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunRow;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.WorkflowExecutionStatus;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowExecutionAlreadyStarted;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Postgres is the catalogue: every run it lists as QUEUED, RUNNING or PAUSED must have a live workflow. When one has
 * none (the Temporal database was lost, the in-process test server restarted, the API died between its INSERT and
 * starting the workflow), the run is started again from its first stage without a stored result, with the earlier
 * stages' results as input and the options stored with it (ranks, chunk size, retention; the constructor's
 * {@code options} where it stored none); training then resumes from the newest committed checkpoint. Run by the API on
 * start and by {@code slope up}; running it twice starts nothing twice.
 */
public final class Reconciler {
    private final WorkflowClient client;
    private final RunCatalogue catalogue;
    private final RunOptions options;

    public Reconciler(WorkflowClient client, RunCatalogue catalogue, RunOptions options) {
        this.client = client;
        this.catalogue = catalogue;
        this.options = options;
    }

    /** @return the runs started again */
    public List<UUID> reconcile() throws SQLException {
        List<UUID> restarted = new ArrayList<>();
        for (RunRow run : catalogue.unfinishedRuns()) {
            if (live(run.workflowId())) {
                continue;
            }
            ResolvedSpec spec;
            try {
                spec = RunSpecCodec.parseResolved(run.specJson());
            } catch (InvalidSpecException e) {
                catalogue.finish(run.id(), "FAILED", "reconciler: the stored spec no longer validates: "
                        + e.getMessage());
                continue;
            }
            Map<Stage, StageResult> results = catalogue.stageResults(run.id());
            Stage from = Stage.FINALIZE;
            for (Stage stage : Stage.values()) {
                if (!results.containsKey(stage)) {
                    from = stage;
                    break;
                }
            }
            SlopeRunWorkflow workflow = client.newWorkflowStub(SlopeRunWorkflow.class,
                    SlopeRunWorkflow.startOptions(run.id().toString(), run.owner()).build());
            try {
                WorkflowClient.start(workflow::run, new RunInput(run.id().toString(), spec.toRunSpec(),
                        run.options().resolve(options), from, results, null));
            } catch (WorkflowExecutionAlreadyStarted raced) {
                continue; // someone else started it meanwhile: it is live now
            }
            catalogue.event(run.id(), "WARN", from, "reconciler: " + run.status() + " run had no live workflow; "
                    + "started again from stage " + from.wireName());
            restarted.add(run.id());
        }
        return restarted;
    }

    private boolean live(String workflowId) {
        try {
            WorkflowExecutionStatus status = client.getWorkflowServiceStubs().blockingStub()
                    .describeWorkflowExecution(DescribeWorkflowExecutionRequest.newBuilder()
                            .setNamespace(client.getOptions().getNamespace())
                            .setExecution(WorkflowExecution.newBuilder().setWorkflowId(workflowId).build()).build())
                    .getWorkflowExecutionInfo().getStatus();
            return status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING;
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() == Status.Code.NOT_FOUND) {
                return false;
            }
            throw e;
        }
    }
}
