package io.slope.gpuworker;

import io.slope.activities.data.DatasetStore;
import io.slope.storage.ObjectStore;
import io.slope.activities.worker.WorkerEnvironment;
import io.slope.engine.backend.Backends;
import io.slope.engine.data.Dataset;
import io.slope.workflows.run.TaskQueues;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.worker.WorkerOptions;
import java.lang.management.ManagementFactory;
import java.util.concurrent.TimeUnit;

/**
 * The GPU worker process: polls {@link TaskQueues#GPU} and its own queue ({@link TaskQueues#gpuWorker}) with one
 * activity slot in all. On SIGTERM the running chunk stops at its next step with a checkpoint committed and returns
 * before the worker stops polling, so a restart or deploy loses no training.
 */
public final class GpuWorker {
    private GpuWorker() {}

    /** A started worker and a way to stop it gracefully. */
    public record Running(WorkerFactory factory, ModelActivitiesImpl activities, String queue) {
        public void stopGracefully() throws InterruptedException {
            factory.suspendPolling(); // take no new task; the running one still reports its completion
            activities.stopAndWait(120_000);
            factory.shutdown();
            factory.awaitTermination(30, TimeUnit.SECONDS);
        }
    }

    public static Running start(WorkerEnvironment env, String workerId) throws Exception {
        ObjectStore objects = env.objectStore();
        String queue = TaskQueues.gpuWorker(workerId);
        ModelActivitiesImpl activities = new ModelActivitiesImpl(objects,
                new DatasetStore(objects, Dataset.DEFAULT_TOKENS_PER_SHARD), env.catalogue(), env.progressCatalogue(),
                env.home().resolve("cache/datasets"), env.home().resolve("gpu-scratch/" + workerId), queue);
        WorkerFactory factory = WorkerFactory.newInstance(env.client());
        // Heartbeats reach the server within 2 s (not the default 80% of the heartbeat timeout), because a heartbeat
        // is how pause and cancel reach a training chunk.
        WorkerOptions options = WorkerOptions.newBuilder().setMaxConcurrentActivityExecutionSize(1)
                .setMaxHeartbeatThrottleInterval(java.time.Duration.ofSeconds(2)).build();
        for (String q : new String[] {TaskQueues.GPU, queue}) {
            Worker worker = factory.newWorker(q, options);
            worker.registerActivitiesImplementations(activities);
        }
        factory.start();
        return new Running(factory, activities, queue);
    }

    public static void main(String[] args) throws Exception {
        String workerId = System.getenv().getOrDefault("SLOPE_WORKER_ID",
                ManagementFactory.getRuntimeMXBean().getName());
        Running running = start(WorkerEnvironment.fromEnvironment(System.getenv()), workerId);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                running.stopGracefully();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "gpu-worker-shutdown"));
        System.out.println("slope gpu worker " + workerId + ": polling " + TaskQueues.GPU + " and "
                + running.queue());
        for (String backend : Backends.availability()) {
            System.out.println("slope gpu worker " + workerId + ": backend " + backend);
        }
        Thread.currentThread().join();
    }
}
