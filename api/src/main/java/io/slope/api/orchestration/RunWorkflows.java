package io.slope.api.orchestration;

import io.slope.api.config.TemporalSettings;
import io.slope.api.problem.ProblemException;
import io.slope.spec.RunSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.Failures;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunProgress;
import io.slope.workflows.run.SearchAttributes;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.enums.v1.WorkflowIdConflictPolicy;
import io.temporal.api.enums.v1.WorkflowIdReusePolicy;
import io.temporal.client.UpdateOptions;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowExecutionAlreadyStarted;
import io.temporal.client.WorkflowNotFoundException;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.client.WorkflowUpdateException;
import io.temporal.client.WorkflowUpdateHandle;
import io.temporal.client.WorkflowUpdateStage;
import io.temporal.common.SearchAttributes.Builder;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.inject.Singleton;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The API's side of Temporal: starts a run's workflow ({@code run-<id>} on {@code slope-pipeline}), cancels it, and
 * sends it the pause, resume and setRanks Updates. Postgres stays the catalogue; nothing here lists or reads run state.
 */
@Singleton
public class RunWorkflows {
    private final WorkflowClient client;
    private final TemporalSettings settings;
    private final Timer startTimer;

    public RunWorkflows(WorkflowClient client, TemporalSettings settings, MeterRegistry meters) {
        this.client = client;
        this.settings = settings;
        // How long Temporal takes to start a run's workflow: the larger part of a submit's latency.
        this.startTimer = Timer.builder("slope.workflow.start").description("starting a run's workflow in Temporal")
                .publishPercentileHistogram().register(meters);
    }

    /**
     * Starts the run's workflow with its options, in its owner's share of the task queues
     * ({@link SlopeRunWorkflow#startOptions}); from {@code fromStage} with the earlier stages' results for a retry. A
     * workflow of that id that is still open is left alone (it is the run), so starting twice is harmless.
     */
    public void start(String runId, String owner, RunSpec spec, RunOptions runOptions, Stage fromStage,
            Map<Stage, StageResult> earlierResults) {
        Builder attributes = io.temporal.common.SearchAttributes.newBuilder()
                .set(SearchAttributes.RUN_ID, runId)
                .set(SearchAttributes.STATUS, "QUEUED")
                .set(SearchAttributes.MODEL, spec.model() != null && spec.model().preset() != null
                        ? spec.model().preset() : "custom")
                .set(SearchAttributes.STAGE, (fromStage == null ? Stage.PREPARE_DATA : fromStage).wireName());
        WorkflowOptions options = SlopeRunWorkflow.startOptions(runId, owner)
                .setWorkflowIdReusePolicy(WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
                .setWorkflowIdConflictPolicy(WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING)
                .setTypedSearchAttributes(attributes.build())
                .build();
        SlopeRunWorkflow workflow = client.newWorkflowStub(SlopeRunWorkflow.class, options);
        RunInput input = new RunInput(runId, spec, runOptions, fromStage, earlierResults, null);
        try {
            startTimer.record(() -> WorkflowClient.start(workflow::run, input));
        } catch (WorkflowExecutionAlreadyStarted e) {
            // USE_EXISTING makes this rare; either way the run's workflow is running, which is what was asked.
        }
    }

    /** Requests cancellation: the workflow flushes a checkpoint and records the run CANCELLED. */
    public void cancel(String runId) {
        try {
            client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(runId)).cancel();
        } catch (WorkflowNotFoundException e) {
            throw ProblemException.conflict("no-workflow", "run " + runId + " has no open workflow to cancel "
                    + "(it has finished, or it was never started: the reconciler starts queued runs)");
        }
    }

    public void pause(String runId) {
        update(runId, "pause");
    }

    public void resume(String runId) {
        update(runId, "resume");
    }

    /** The ranks of the chunks that start from now on; returns once the workflow has accepted them. */
    public void setRanks(String runId, int ranks) {
        update(runId, "setRanks", ranks);
    }

    /**
     * Sends an Update and waits until the workflow has accepted it (its validator passed), not until it is complete:
     * a pause completes only once the running chunk has flushed its checkpoint.
     */
    private void update(String runId, String name, Object... args) {
        WorkflowStub stub = client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(runId));
        // A thread of its own, interrupted on timeout: startUpdate waits for acceptance as long as it takes, and a
        // shared pool's thread stuck there (cancel does not interrupt a CompletableFuture's) would starve the rest.
        FutureTask<WorkflowUpdateHandle<RunProgress>> accepted = new FutureTask<>(() -> stub.startUpdate(
                UpdateOptions.newBuilder(RunProgress.class).setUpdateName(name)
                        .setWaitForStage(WorkflowUpdateStage.ACCEPTED).build(), args));
        Thread.ofPlatform().daemon().name("workflow-update-" + name + "-" + runId).start(accepted);
        try {
            WorkflowUpdateHandle<RunProgress> handle = accepted.get(settings.updateTimeout().toMillis(),
                    TimeUnit.MILLISECONDS);
            // A validator's refusal comes back as an already completed, failed update.
            CompletableFuture<RunProgress> outcome = handle.getResultAsync();
            if (outcome.isCompletedExceptionally()) {
                outcome.get();
            }
        } catch (TimeoutException e) {
            accepted.cancel(true);
            throw ProblemException.unavailable("the run's workflow did not take the " + name + " request within "
                    + settings.updateTimeout().toSeconds() + " s (is a pipeline worker running?); try again");
        } catch (InterruptedException e) {
            accepted.cancel(true);
            Thread.currentThread().interrupt();
            throw ProblemException.unavailable(name + " interrupted");
        } catch (ExecutionException e) {
            throw refusal(runId, name, e.getCause());
        }
    }

    private static RuntimeException refusal(String runId, String name, Throwable cause) {
        if (cause instanceof WorkflowNotFoundException) {
            return ProblemException.conflict("no-workflow", "run " + runId + " has no open workflow to " + name);
        }
        if (cause instanceof WorkflowUpdateException update) {
            // The validator's refusal, e.g. "the run is already paused; resume it first".
            return ProblemException.conflict("illegal-state", Failures.message(update));
        }
        if (cause instanceof RuntimeException runtime) {
            return runtime;
        }
        return new IllegalStateException(cause);
    }

    /** The Temporal UI's page of a run's workflow, or null when no UI address is configured. */
    public String uiUrl(String runId) {
        if (settings.uiUrl() == null || settings.uiUrl().isBlank()) {
            return null;
        }
        return settings.uiUrl().replaceAll("/+$", "") + "/namespaces/" + settings.namespace() + "/workflows/"
                + SlopeRunWorkflow.workflowId(runId);
    }
}
