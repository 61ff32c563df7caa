package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.RetryState;
import io.temporal.api.enums.v1.TimeoutType;
import io.temporal.client.WorkflowUpdateException;
import io.temporal.failure.ActivityFailure;
import io.temporal.failure.ApplicationFailure;
import io.temporal.failure.TimeoutFailure;
import org.junit.jupiter.api.Test;

/** The thrower's own message, from under Temporal's wrapping, for the run's record and the API's refusals. */
class FailuresTest {
    @Test
    void anActivityFailureGivesTheActivitysMessageNotItsCauses() {
        ApplicationFailure thrown = ApplicationFailure.newFailureWithCause("chunk 3 diverged: loss is NaN",
                "java.lang.IllegalStateException", ApplicationFailure.newFailure("inner detail", "java.io.IOException"));
        ActivityFailure wrapped = new ActivityFailure("Activity task failed", 5, 6, "TrainChunk", "7",
                RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE, "worker", thrown);
        assertEquals("chunk 3 diverged: loss is NaN", Failures.message(wrapped));
    }

    @Test
    void anUpdateRefusalGivesTheValidatorsMessage() {
        WorkflowUpdateException refusal = new WorkflowUpdateException(
                WorkflowExecution.newBuilder().setWorkflowId("run-1").build(), "u1", "pause",
                ApplicationFailure.newFailure("the run is already paused; resume it first",
                        "java.lang.IllegalStateException"));
        assertEquals("the run is already paused; resume it first", Failures.message(refusal));
    }

    @Test
    void aTimeoutWithoutACauseGivesItsOwnMessageAndAPlainExceptionItsMessage() {
        ActivityFailure timedOut = new ActivityFailure("Activity task timed out", 5, 6, "TrainChunk", "7",
                RetryState.RETRY_STATE_TIMEOUT, "worker",
                new TimeoutFailure("activity StartToClose timeout", null, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE));
        assertEquals("activity StartToClose timeout", Failures.message(timedOut));
        assertEquals("plain", Failures.message(new IllegalStateException("plain", new RuntimeException("cause"))));
    }
}
