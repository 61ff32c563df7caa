package io.slope.gpuworker;

import io.slope.activities.checkpoint.S3CheckpointStore;
import io.slope.activities.data.DatasetStore;
import io.slope.activities.worker.PipelineWorker;
import io.slope.activities.worker.WorkerEnvironment;
import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Dataset;
import io.slope.engine.run.TrainingSession;
import io.slope.localservices.ManagedProcess;
import io.slope.localservices.S3Server;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.storage.ObjectStore;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.client.WorkflowClient;
import io.temporal.worker.WorkerFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.BooleanSupplier;

/**
 * The whole service on real servers: Postgres, the Temporal dev server and S3Proxy (once per JVM), the pipeline
 * worker in this JVM and GPU workers as separate JVMs, so that they can be SIGKILLed like a crashing machine.
 */
final class PipelineHarness implements AutoCloseable {
    static final String BUCKET = "slope";

    final Map<String, String> env = new HashMap<>();
    final WorkerEnvironment environment;
    final RunCatalogue catalogue;
    final ObjectStore objects;
    final WorkflowClient client;
    final Path home;
    private final WorkerFactory pipelineWorker;
    private final List<ManagedProcess> gpuWorkers = new ArrayList<>();
    private int workerCount;

    PipelineHarness(String database) throws Exception {
        TestServices services = TestServices.get();
        home = services.scratch("e2e-" + database);
        env.put("SLOPE_TEMPORAL_TARGET", services.temporal().target());
        env.put("SLOPE_DB_URL", services.postgres().createDatabase(database));
        env.put("SLOPE_S3_ENDPOINT", services.s3().endpoint());
        env.put("SLOPE_S3_ACCESS_KEY", S3Server.ACCESS_KEY);
        env.put("SLOPE_S3_SECRET_KEY", S3Server.SECRET_KEY);
        env.put("SLOPE_S3_BUCKET", BUCKET);
        env.put("SLOPE_HOME", home.toString());
        environment = WorkerEnvironment.fromEnvironment(env);
        pipelineWorker = PipelineWorker.start(environment);
        catalogue = environment.catalogue();
        objects = environment.objectStore();
        client = environment.client();
    }

    /** A GPU worker in its own JVM (the worker's production main class). */
    ManagedProcess startGpuWorker() throws IOException {
        String id = "gpu-" + (++workerCount) + "-" + UUID.randomUUID().toString().substring(0, 8);
        String classpath = Files.readString(Path.of("target/worker.classpath")).strip() + ":"
                + Path.of("target/classes").toAbsolutePath();
        Map<String, String> workerEnv = new HashMap<>(env);
        workerEnv.put("SLOPE_WORKER_ID", id);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ManagedProcess worker = ManagedProcess.start(id, List.of(java, "-Xmx1g", "-cp", classpath,
                "io.slope.gpuworker.GpuWorker"), workerEnv, home.resolve(id + ".log"));
        gpuWorkers.add(worker);
        return worker;
    }

    static Path corpus(Path dir) throws IOException {
        Path source = Path.of("..", "..", "shared", "data", "tinyshakespeare.txt");
        String text = Files.exists(source) ? Files.readString(source).substring(0, 60_000)
                : "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n".repeat(700);
        Path file = dir.resolve("corpus.txt");
        Files.writeString(file, text);
        return file.toAbsolutePath();
    }

    /** Other text than {@link #corpus}'s, for held-out files: the next part of the same play when it is there. */
    static String heldOutText() throws IOException {
        Path source = Path.of("..", "..", "shared", "data", "tinyshakespeare.txt");
        return Files.exists(source) ? Files.readString(source).substring(60_000, 66_000)
                : "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n".repeat(80);
    }

    static ResolvedSpec tinySpec(Path corpus, int steps) {
        return tinySpec(corpus, steps, "\"valFraction\": 0.1");
    }

    /** {@link #tinySpec(Path, int)} with held-out files ({@code data.validation}) instead of a held-out fraction. */
    static ResolvedSpec tinySpec(Path corpus, String validation, int steps) {
        return tinySpec(corpus, steps, "\"validation\": [\"" + validation + "\"]");
    }

    private static ResolvedSpec tinySpec(Path corpus, int steps, String heldOut) {
        return RunSpecCodec.parseResolved("""
                {"name": "e2e", "model": {"preset": "tiny", "layers": 2, "dModel": 64, "heads": 4, "seqLen": 32},
                 "adapters": {"start": 0.75},
                 "training": {"steps": %d, "batchSize": 4, "seed": 11},
                 "optimizer": {"lr": 0.003, "warmupSteps": 4},
                 "data": {"corpus": ["%s"], "tokenizer": "char", %s},
                 "eval": {"every": 10, "maxWindows": 8}, "checkpointEvery": 5, "backend": "cpu", "threads": 1}
                """.formatted(steps, corpus, heldOut));
    }

    /** Registers the run in the catalogue (as the API would) and starts its workflow. */
    UUID submit(ResolvedSpec spec, RunOptions options) throws Exception {
        return submit(spec, options, "tester");
    }

    /** {@link #submit} as {@code owner}, in that user's share of the task queues. */
    UUID submit(ResolvedSpec spec, RunOptions options, String owner) throws Exception {
        UUID id = UUID.randomUUID();
        catalogue.createRun(id, owner, spec, SlopeRunWorkflow.workflowId(id.toString()));
        SlopeRunWorkflow workflow = client.newWorkflowStub(SlopeRunWorkflow.class,
                SlopeRunWorkflow.startOptions(id.toString(), owner).build());
        WorkflowClient.start(workflow::run, RunInput.start(id.toString(), spec, options));
        return id;
    }

    /** Waits for the workflow's result (or its failure). */
    <T> T result(UUID id, Class<T> type, Duration timeout) throws Exception {
        return client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(id.toString()))
                .getResult(timeout.toSeconds(), java.util.concurrent.TimeUnit.SECONDS, type);
    }

    static void await(String what, Duration timeout, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(200);
        }
    }

    long latestStep(UUID id) {
        try {
            return catalogue.run(id).orElseThrow().latestStep();
        } catch (Exception e) {
            return -1; // the catalogue may be restarting in a fault test
        }
    }

    /** The final checkpoint of a run, from S3, verified. */
    LoadedCheckpoint finalCheckpoint(UUID id, int steps) throws IOException {
        return new S3CheckpointStore(objects, id.toString(), home.resolve("verify")).load(steps);
    }

    /** The same spec trained without any interruption, in this JVM, on the run's prepared dataset. */
    LoadedCheckpoint uninterrupted(ResolvedSpec spec, String datasetId) throws IOException {
        Path dir = home.resolve("reference-" + UUID.randomUUID());
        try (Dataset dataset = new DatasetStore(objects, Dataset.DEFAULT_TOKENS_PER_SHARD).fetch(datasetId,
                home.resolve("reference-cache"))) {
            LocalCheckpointStore store = new LocalCheckpointStore(dir);
            try (TrainingSession session = TrainingSession.open(spec, dataset, store, "reference", QUIET)) {
                session.trainUntil(spec.training().steps(), () -> false);
            }
            return store.load(spec.training().steps());
        }
    }

    static final TrainingSession.Listener QUIET = new TrainingSession.Listener() {};

    Database database() {
        return environment.database();
    }

    @Override
    public void close() {
        for (ManagedProcess worker : gpuWorkers) {
            if (worker.alive()) {
                worker.kill();
            }
        }
        pipelineWorker.shutdownNow();
    }
}
