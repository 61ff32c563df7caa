package io.slope.gpuworker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.localservices.ManagedProcess;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * One instance of each fault in the middle of the sparse phase: the GPU worker SIGKILLed (and a fresh one started),
 * the Temporal dev server SIGKILLed and restarted on its SQLite file, Postgres stopped without a checkpoint and
 * restarted, the S3 server killed and restarted. Every run must still succeed, with final weights bit-identical to
 * the same spec trained without interruption.
 */
@TestMethodOrder(MethodOrderer.MethodName.class)
class PipelineFaultTest {
    private static final int STEPS = 40;
    private static PipelineHarness harness;
    private static ManagedProcess worker;
    private static ResolvedSpec spec;
    private static LoadedCheckpoint reference;
    private static UUID lastSubmitted;
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() throws Exception {
        harness = new PipelineHarness("e2e_faults");
        worker = harness.startGpuWorker();
        spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), STEPS);
    }

    @AfterAll
    static void stop() {
        harness.close();
    }

    /** Submits, waits until a few checkpoints are committed, injects the fault, and checks the outcome. */
    private void runThrough(Runnable fault) throws Exception {
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0));
        lastSubmitted = id;
        PipelineHarness.await("checkpoint 10 of run " + id, Duration.ofMinutes(4), () -> harness.latestStep(id) >= 10);
        fault.run();
        RunOutcome outcome = resultRidingOutRestarts(id);
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals("SUCCEEDED", harness.catalogue.run(id).orElseThrow().status().name());
        if (reference == null) {
            reference = harness.uninterrupted(spec, outcome.results().get(Stage.PREPARE_DATA).datasetId());
        }
        assertEquals(reference.checkpoint().tensors(), harness.finalCheckpoint(id, STEPS).checkpoint().tensors(),
                "the interrupted run's final weights equal an uninterrupted run's, bit for bit");
    }

    /** Polls for the result, tolerating a client call that fails while a server restarts. */
    private static RunOutcome resultRidingOutRestarts(UUID id) throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(8).toNanos();
        while (true) {
            try {
                return harness.result(id, RunOutcome.class, Duration.ofSeconds(60));
            } catch (io.temporal.client.WorkflowServiceException | io.grpc.StatusRuntimeException
                    | java.util.concurrent.TimeoutException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(1000);
            }
        }
    }

    @Test
    void a_gpuWorkerKilledMidPhaseIsReplacedAndTheRunResumesExactly() throws Exception {
        runThrough(() -> {
            worker.kill();
            try {
                worker = harness.startGpuWorker();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    @Test
    void b_temporalServerKilledAndRestarted() throws Exception {
        runThrough(() -> {
            TestServices.get().temporal().killAndRestart();
        });
    }

    @Test
    void c_postgresCrashedAndRestarted() throws Exception {
        runThrough(() -> {
            TestServices.get().postgres().crash();
            sleep(2000);
            TestServices.get().postgres().start();
        });
    }

    @Test
    void d_s3ServerKilledAndRestarted() throws Exception {
        runThrough(() -> {
            TestServices.get().s3().kill();
            sleep(2000);
            TestServices.get().s3().start();
        });
        assertTrue(worker.alive(), "the worker rode out the S3 outage");
    }

    @Test
    void e_sigtermFinishesACheckpointBeforeTheWorkerExits() throws Exception {
        UUID[] run = new UUID[1];
        runThrough(() -> {
            try {
                UUID id = harness.catalogue.run(lastSubmitted).orElseThrow().id();
                run[0] = id;
                worker.stop(); // SIGTERM: the shutdown hook stops the chunk at a step boundary with a checkpoint
                var row = harness.catalogue.run(id).orElseThrow();
                assertEquals(row.stepsDone(), row.latestStep(), "no step trained after the last checkpoint was lost");
                worker = harness.startGpuWorker();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        assertTrue(harness.catalogue.events(run[0]).stream().anyMatch(e -> e.contains("model resident")),
                "a fresh worker restored the model");
    }

    @Test
    void f_aCorruptNewestCheckpointIsNeverUsedAndTheRunsEventsSaySo() throws Exception {
        UUID[] run = new UUID[1];
        long[] corrupted = new long[1];
        runThrough(() -> {
            try {
                run[0] = lastSubmitted;
                worker.kill();
                var store = new io.slope.activities.checkpoint.S3CheckpointStore(harness.objects,
                        lastSubmitted.toString(), dir.resolve("corrupt"));
                corrupted[0] = store.committedSteps().getLast();
                String shard = store.prefix(corrupted[0]) + "tensors-00000.safetensors";
                byte[] bytes = harness.objects.getBytes(shard).orElseThrow();
                bytes[bytes.length / 2] ^= 0x40; // one flipped bit in the middle of a tensor
                harness.objects.putBytes(shard, bytes);
                worker = harness.startGpuWorker();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        List<String> events = harness.catalogue.events(run[0]);
        assertTrue(events.stream().anyMatch(e -> e.startsWith("WARN skipped checkpoint " + corrupted[0])
                && e.contains("sha256")), events.toString());
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
