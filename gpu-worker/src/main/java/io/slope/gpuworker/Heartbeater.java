package io.slope.gpuworker;

import io.slope.spec.pipeline.CheckpointRef;
import io.temporal.activity.ActivityExecutionContext;
import io.temporal.client.ActivityCompletionException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Heartbeats an activity every few seconds from its own thread, with {@code {step, lastCommittedCheckpoint}} as
 * details, so that long steps, evaluations and checkpoint uploads never look like a dead worker. A heartbeat is also
 * how cancellation arrives: once it reports one, {@link #stopRequested} turns true and the training loop stops at the
 * next step boundary with a checkpoint; {@link #rethrowIfCancelled} then reports the cancellation.
 */
final class Heartbeater implements AutoCloseable {
    /** The heartbeat details: where the model is, which checkpoint a retry can trust. */
    record Details(int step, CheckpointRef lastCommittedCheckpoint) {}

    private final Thread thread;
    private final AtomicReference<ActivityCompletionException> stop = new AtomicReference<>();
    private volatile boolean closed;

    Heartbeater(ActivityExecutionContext context, Supplier<Details> details) {
        this(context, details, stop -> {});
    }

    /**
     * {@code onStop} runs (on the heartbeat thread) once a heartbeat reports cancellation, timeout or shutdown. The
     * heartbeats go on after it, so that a graceful stop (a last step and its checkpoint) is not taken for a dead
     * worker.
     */
    Heartbeater(ActivityExecutionContext context, Supplier<Details> details,
            Consumer<ActivityCompletionException> onStop) {
        thread = Thread.ofPlatform().daemon().name("heartbeat-" + context.getInfo().getActivityId()).start(() -> {
            while (!closed) {
                try {
                    context.heartbeat(details.get());
                } catch (ActivityCompletionException e) {
                    if (stop.compareAndSet(null, e)) {
                        onStop.accept(e);
                    }
                } catch (RuntimeException e) {
                    // a transient failure to reach the server; the next beat tries again
                }
                try {
                    Thread.sleep(3000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
    }

    boolean stopRequested() {
        return stop.get() != null;
    }

    /** Reports the cancellation (or timeout, or shutdown) that a heartbeat received, if any. */
    void rethrowIfCancelled() {
        ActivityCompletionException e = stop.get();
        if (e != null) {
            throw e;
        }
    }

    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
