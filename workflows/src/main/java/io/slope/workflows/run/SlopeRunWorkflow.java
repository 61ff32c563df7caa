package io.slope.workflows.run;

import io.temporal.workflow.QueryMethod;
import io.temporal.workflow.UpdateMethod;
import io.temporal.workflow.UpdateValidatorMethod;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;

/** One training run through its stages (ARCHITECTURE.md §2). Workflow id: {@code run-<runId>}. */
@WorkflowInterface
public interface SlopeRunWorkflow {
    static String workflowId(String runId) {
        return "run-" + runId;
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
}
