package io.slope.workflows.run;

import io.temporal.client.WorkflowOptions;
import io.temporal.common.Priority;
import io.temporal.workflow.QueryMethod;
import io.temporal.workflow.UpdateMethod;
import io.temporal.workflow.UpdateValidatorMethod;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;

/** One training run through its stages (docs/architecture.md §2). Workflow id: {@code run-<runId>}. */
@WorkflowInterface
public interface SlopeRunWorkflow {
    static String workflowId(String runId) {
        return "run-" + runId;
    }

    /**
     * How every starter (the API, the reconciler) starts a run's workflow: its id, on {@link TaskQueues#PIPELINE},
     * with the owner as Temporal's fairness key. Its activities and continuations inherit the key, so the task queues,
     * {@link TaskQueues#GPU} above all, hand out work round-robin between users instead of first come first served
     * (docs/architecture.md §2, ADR 034).
     */
    static WorkflowOptions.Builder startOptions(String runId, String owner) {
        return WorkflowOptions.newBuilder().setWorkflowId(workflowId(runId)).setTaskQueue(TaskQueues.PIPELINE)
                .setPriority(Priority.newBuilder().setFairnessKey(owner).build());
    }

    @WorkflowMethod
    RunOutcome run(RunInput input);

    @QueryMethod
    RunProgress progress();

    /** Stops training at the next step boundary with a checkpoint flushed, and waits; returns once in effect. */
    @UpdateMethod
    RunProgress pause();

    @UpdateValidatorMethod(updateName = "pause")
    void validatePause();

    @UpdateMethod
    RunProgress resume();

    @UpdateValidatorMethod(updateName = "resume")
    void validateResume();

    /**
     * Rank 0 of a data-parallel chunk reports the id of the collective it listens on; the workflow then starts ranks
     * 1…N−1 with it. Refused unless the workflow is waiting for exactly this chunk attempt's rendezvous.
     */
    @UpdateMethod
    void collectiveReady(CollectiveRendezvous rendezvous);

    @UpdateValidatorMethod(updateName = "collectiveReady")
    void validateCollectiveReady(CollectiveRendezvous rendezvous);

    /** The number of ranks for the chunks that start from now on (a running chunk keeps its ranks). */
    @UpdateMethod
    RunProgress setRanks(int ranks);

    @UpdateValidatorMethod(updateName = "setRanks")
    void validateSetRanks(int ranks);
}
