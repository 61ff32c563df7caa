package io.slope.workflows.run;

/** The task queues: workflows and CPU activities on one, model stages on the other (docs/architecture.md §2). */
public final class TaskQueues {
    /** Workflows, data preparation, bookkeeping, GC, finalize. */
    public static final String PIPELINE = "slope-pipeline";
    /** Model stages; any GPU worker. Each GPU worker also polls its own queue, {@link #gpuWorker}. */
    public static final String GPU = "slope-gpu";

    private TaskQueues() {}

    /** The queue only one GPU worker polls: where chunks go to find their model still resident. */
    public static String gpuWorker(String workerId) {
        return GPU + "/" + workerId;
    }
}
