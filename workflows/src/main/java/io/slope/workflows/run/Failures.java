package io.slope.workflows.run;

import io.temporal.failure.ActivityFailure;
import io.temporal.failure.ApplicationFailure;
import io.temporal.failure.TemporalException;
import io.temporal.failure.TemporalFailure;

/** What went wrong, in words, for the run's record and the API's refusals. */
public final class Failures {
    private Failures() {}

    /**
     * The message of the exception that was thrown, without Temporal's wrapping: Temporal's wrappers (an
     * {@code ActivityFailure}, a {@code TimeoutFailure}, the client's {@code WorkflowUpdateException}, ...) are
     * unwrapped down to the first {@link ApplicationFailure}, the exception an activity, update validator or workflow
     * threw, whose own message is returned; its causes are not followed, the thrower's message being the one meant for
     * people. A pure function of its argument, so workflow code may call it.
     */
    public static String message(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t instanceof TemporalException && !(t instanceof ApplicationFailure)) {
            t = t.getCause();
        }
        return t instanceof TemporalFailure failure ? failure.getOriginalMessage() : t.getMessage();
    }

    /** Whether an activity failed for good: retrying it elsewhere would fail the same way. */
    public static boolean isNonRetryable(ActivityFailure e) {
        return e.getCause() instanceof ApplicationFailure app && app.isNonRetryable();
    }
}
