package io.slope.gpuworker;

import io.temporal.activity.ActivityExecutionContext;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.SQLException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * The worker's one activity slot, across both queues it polls: a model stage holds the GPU and the resident model
 * alone. Also where a graceful stop is asked for and waited on.
 */
final class WorkerSlot {
    /** A model stage's body; its checked failures leave the slot unchecked, naming the run. */
    interface Body<T> {
        T run() throws IOException, SQLException;
    }

    private final Semaphore slot = new Semaphore(1);
    private volatile boolean stopping;

    /** Runs {@code body} once the slot is free, heartbeating while it waits so that cancellation still reaches it. */
    <T> T run(ActivityExecutionContext context, String runId, Body<T> body) {
        try {
            while (!slot.tryAcquire(3, TimeUnit.SECONDS)) {
                context.heartbeat(null);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the worker's slot", e);
        }
        try {
            return body.run();
        } catch (IOException e) {
            throw new UncheckedIOException("run " + runId + ": " + e.getMessage(), e);
        } catch (SQLException e) {
            throw new IllegalStateException("run " + runId + ": catalogue: " + e.getMessage(), e);
        } finally {
            slot.release();
        }
    }

    /** Whether the worker is stopping: a running chunk then stops at its next step with a checkpoint. */
    boolean stopping() {
        return stopping;
    }

    /** Graceful shutdown: the running chunk stops at its next step with a checkpoint; waits for it to return. */
    void stopAndWait(long timeoutMillis) throws InterruptedException {
        stopping = true;
        if (slot.tryAcquire(timeoutMillis, TimeUnit.MILLISECONDS)) {
            slot.release();
        }
    }
}
