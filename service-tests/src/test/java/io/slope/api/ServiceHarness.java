package io.slope.api;

import io.slope.activities.worker.PipelineWorker;
import io.slope.activities.worker.WorkerEnvironment;
import io.slope.gpuworker.GpuWorker;
import io.temporal.worker.WorkerFactory;

/**
 * The whole service in this JVM, once: the API on real servers ({@link ApiHarness}, module api's tests) and beside it
 * the pipeline and GPU workers (CPU backend) on the same Postgres, Temporal dev server and S3Proxy, so submitted runs
 * really run.
 */
public final class ServiceHarness {
    private static boolean workersStarted;

    private ServiceHarness() {}

    /** The API harness, with the workers started the first time. */
    public static synchronized ApiHarness get() throws Exception {
        ApiHarness api = ApiHarness.get();
        if (!workersStarted) {
            WorkerEnvironment environment = WorkerEnvironment.fromEnvironment(api.env);
            WorkerFactory pipeline = PipelineWorker.start(environment);
            GpuWorker.Running gpu = GpuWorker.start(environment, "api-test-gpu");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                pipeline.shutdownNow();
                gpu.factory().shutdownNow();
            }, "service-harness-shutdown"));
            workersStarted = true;
        }
        return api;
    }
}
