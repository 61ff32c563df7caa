package io.slope.activities.worker;

import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import io.slope.workflows.converter.SlopeDataConverter;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.serviceclient.WorkflowServiceStubs;
import io.temporal.serviceclient.WorkflowServiceStubsOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * What every worker process reads from its environment: the Temporal server (SLOPE_TEMPORAL_TARGET, default
 * 127.0.0.1:7233; SLOPE_TEMPORAL_NAMESPACE, default "default"), the catalogue (SLOPE_DB_URL), the object store
 * (SLOPE_S3_*), and local folders (SLOPE_HOME, default ~/.slope). Secrets stay here, never in workflow inputs.
 */
public record WorkerEnvironment(String temporalTarget, String namespace, Database database, S3Config s3,
        Path home) {
    public static WorkerEnvironment fromEnvironment(Map<String, String> env) {
        return new WorkerEnvironment(env.getOrDefault("SLOPE_TEMPORAL_TARGET", "127.0.0.1:7233"),
                env.getOrDefault("SLOPE_TEMPORAL_NAMESPACE", "default"), Database.fromEnvironment(env),
                S3Config.fromEnvironment(env),
                Path.of(env.getOrDefault("SLOPE_HOME", System.getProperty("user.home") + "/.slope")));
    }

    public WorkflowClient client() {
        WorkflowServiceStubs service = WorkflowServiceStubs.newServiceStubs(WorkflowServiceStubsOptions.newBuilder()
                .setTarget(temporalTarget).build());
        return WorkflowClient.newInstance(service, WorkflowClientOptions.newBuilder().setNamespace(namespace)
                .setDataConverter(SlopeDataConverter.create()).build());
    }

    public RunCatalogue catalogue() {
        return new RunCatalogue(database);
    }

    /** For progress from the training loop: gives up fast, so an unreachable Postgres never holds up a step. */
    public RunCatalogue progressCatalogue() {
        return new RunCatalogue(database.withoutRetries());
    }

    public ObjectStore objectStore() throws IOException {
        ObjectStore store = new ObjectStore(s3);
        store.ensureBucket();
        return store;
    }
}
