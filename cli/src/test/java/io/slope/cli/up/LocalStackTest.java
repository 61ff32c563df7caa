package io.slope.cli.up;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.catalogue.RunCatalogue;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.localservices.Ports;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.slope.workflows.run.TaskQueues;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * slope up's stack runs a tiny run end to end, keeps its state across a restart (there without its GPU worker), with
 * either Temporal server.
 */
class LocalStackTest {
    private final List<Path> homes = new ArrayList<>();

    private Path home() throws Exception {
        // World-traversable: Postgres runs as another user when the tests run as root.
        Path home = Files.createTempDirectory("slope-up-test-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        homes.add(home);
        return home;
    }

    @AfterEach
    void removeHomes() throws Exception {
        for (Path home : homes) {
            DurableFiles.deleteRecursively(home);
        }
    }

    private static ResolvedSpec spec(Path home) throws Exception {
        Path corpus = home.resolve("corpus.txt");
        Files.writeString(corpus, "It was the best of times, it was the worst of times.\n".repeat(300));
        return RunSpecCodec.parseResolved("""
                {"name": "up", "model": {"preset": "tiny", "layers": 1, "dModel": 32, "heads": 2, "seqLen": 16},
                 "training": {"steps": 12, "batchSize": 2, "seed": 3}, "optimizer": {"warmupSteps": 1},
                 "data": {"corpus": ["%s"], "valFraction": 0.1}, "eval": {"every": 6, "maxWindows": 4},
                 "checkpointEvery": 6, "backend": "cpu", "threads": 1}""".formatted(corpus));
    }

    private static UUID runOnce(LocalStack stack, ResolvedSpec spec) throws Exception {
        UUID id = UUID.randomUUID();
        RunCatalogue catalogue = stack.environment().catalogue();
        catalogue.createRun(id, "tester", spec, SlopeRunWorkflow.workflowId(id.toString()));
        WorkflowClient client = stack.environment().client();
        SlopeRunWorkflow workflow = client.newWorkflowStub(SlopeRunWorkflow.class, WorkflowOptions.newBuilder()
                .setWorkflowId(SlopeRunWorkflow.workflowId(id.toString())).setTaskQueue(TaskQueues.PIPELINE).build());
        WorkflowClient.start(workflow::run, RunInput.start(id.toString(), spec, new RunOptions(6, 5, 2, 0)));
        RunOutcome outcome = WorkflowStub.fromTyped(workflow).getResult(300, TimeUnit.SECONDS, RunOutcome.class);
        assertEquals("SUCCEEDED", outcome.status());
        return id;
    }

    @Test
    void devServerStackRunsARunAndKeepsItsStateAcrossARestart() throws Exception {
        Path home = home();
        LocalStack.Ports ports = new LocalStack.Ports(Ports.free(), Ports.free(), Ports.free(), Ports.free());
        List<String> said = new ArrayList<>();
        UUID id;
        try (LocalStack stack = LocalStack.start(home, ports, Map.of(), said::add, true, true)) {
            assertTrue(said.stream().anyMatch(l -> l.startsWith("temporal   ") && l.contains("Web UI")), said.toString());
            id = runOnce(stack, spec(home));
        }
        said.clear();
        try (LocalStack stack = LocalStack.start(home, ports, Map.of(), said::add, true, false)) {
            assertEquals("SUCCEEDED", stack.environment().catalogue().run(id).orElseThrow().status().name(),
                    "the catalogue survived the restart");
            Path workerEnv = home.resolve("worker.env");
            assertTrue(Files.readAllLines(workerEnv).contains("SLOPE_DB_URL=" + stack.clientEnvironment()
                    .get("SLOPE_DB_URL")), "without its GPU worker the stack wrote a worker's environment");
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(workerEnv)));
            RunOutcome again = stack.environment().client().newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(
                    id.toString())).getResult(RunOutcome.class);
            assertEquals("SUCCEEDED", again.status(), "so did the workflow history (SQLite)");
            assertTrue(said.contains("reconciler every unfinished run has a live workflow"), said.toString());
        }
    }

    @Test
    void withoutTheTemporalCliTheInProcessServerIsUsedAndSaidSo() throws Exception {
        Path home = home();
        LocalStack.Ports ports = new LocalStack.Ports(Ports.free(), Ports.free(), Ports.free(), Ports.free());
        List<String> said = new ArrayList<>();
        try (LocalStack stack = LocalStack.start(home, ports, Map.of(), said::add, false, true)) {
            assertTrue(said.stream().anyMatch(l -> l.contains("WARNING") && l.contains("in-process test server")),
                    said.toString());
            runOnce(stack, spec(home));
        }
    }
}
