package io.slope.activities.worker;

import io.slope.activities.data.CorpusSource;
import io.slope.activities.data.DatasetStore;
import io.slope.activities.pipeline.PipelineActivitiesImpl;
import io.slope.storage.ObjectStore;
import io.slope.engine.data.Dataset;
import io.slope.workflows.run.SlopeRunWorkflowImpl;
import io.slope.workflows.run.TaskQueues;
import io.temporal.client.WorkflowClient;
import io.temporal.common.converter.DataConverterException;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.worker.WorkflowImplementationOptions;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The pipeline worker: hosts {@link io.slope.workflows.run.SlopeRunWorkflow} and the activities that do not touch the
 * model, on {@link TaskQueues#PIPELINE}. Applies the catalogue's migrations on start.
 */
public final class PipelineWorker {
    private PipelineWorker() {}

    public static WorkerFactory start(WorkerEnvironment env) throws Exception {
        env.database().migrate();
        ObjectStore objects = env.objectStore();
        Path scratch = env.home().resolve("pipeline-scratch");
        PipelineActivitiesImpl activities = new PipelineActivitiesImpl(env.catalogue(), objects,
                new DatasetStore(objects, Dataset.DEFAULT_TOKENS_PER_SHARD),
                new CorpusSource(objects, Path.of(System.getProperty("user.dir"))), scratch);
        WorkflowClient client = env.client();
        WorkerFactory factory = WorkerFactory.newInstance(client);
        Worker worker = factory.newWorker(TaskQueues.PIPELINE);
        worker.registerWorkflowImplementationTypes(WorkflowImplementationOptions.newBuilder()
                .setFailWorkflowExceptionTypes(DataConverterException.class).build(), SlopeRunWorkflowImpl.class);
        worker.registerActivitiesImplementations(activities);
        factory.start();
        return factory;
    }

    public static void main(String[] args) throws Exception {
        WorkerFactory factory = start(WorkerEnvironment.fromEnvironment(System.getenv()));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            factory.shutdown();
            factory.awaitTermination(30, TimeUnit.SECONDS);
        }, "pipeline-worker-shutdown"));
        System.out.println("slope pipeline worker: polling " + TaskQueues.PIPELINE);
        Thread.currentThread().join();
    }
}
