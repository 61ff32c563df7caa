package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.CheckpointRef;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.converter.SlopeDataConverter;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.client.WorkflowFailedException;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.client.WorkflowUpdateException;
import io.temporal.failure.ApplicationFailure;
import io.temporal.failure.CanceledFailure;
import io.temporal.testing.TestEnvironmentOptions;
import io.temporal.testing.TestWorkflowEnvironment;
import io.temporal.api.enums.v1.IndexedValueType;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The workflow's logic on Temporal's in-memory test server, with fake activities. */
@org.junit.jupiter.api.Timeout(120)
class SlopeRunWorkflowTest {
    private TestWorkflowEnvironment env;
    private FakeActivities fakes;
    private WorkflowClient client;

    @BeforeEach
    void setUp() {
        env = TestWorkflowEnvironment.newInstance(TestEnvironmentOptions.newBuilder()
                .setWorkflowClientOptions(WorkflowClientOptions.newBuilder()
                        .setDataConverter(SlopeDataConverter.create()).build()).build());
        for (String attribute : new String[] {"SlopeRunId", "SlopeStage", "SlopeModel", "SlopeStatus"}) {
            env.registerSearchAttribute(attribute, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD);
        }
        fakes = new FakeActivities();
        Worker pipeline = env.newWorker(TaskQueues.PIPELINE);
        pipeline.registerWorkflowImplementationTypes(SlopeRunWorkflowImpl.class);
        pipeline.registerActivitiesImplementations(fakes);
        // As on the GPU worker: heartbeats reach the server within a second, so pause and cancel arrive promptly.
        env.newWorker(TaskQueues.GPU, WorkerOptions.newBuilder()
                .setMaxHeartbeatThrottleInterval(Duration.ofSeconds(1)).build())
                .registerActivitiesImplementations(fakes);
        env.start();
        client = env.getWorkflowClient();
    }

    @AfterEach
    void tearDown() {
        env.close();
    }

    static ResolvedSpec spec(int steps) {
        return RunSpecCodec.parseResolved("""
                {"name": "wf", "training": {"steps": %d}, "adapters": {"start": 0.5},
                 "data": {"corpus": ["/corpus.txt"]}}""".formatted(steps));
    }

    private SlopeRunWorkflow stub(String runId) {
        return client.newWorkflowStub(SlopeRunWorkflow.class, WorkflowOptions.newBuilder()
                .setWorkflowId(SlopeRunWorkflow.workflowId(runId)).setTaskQueue(TaskQueues.PIPELINE).build());
    }

    @Test
    void runsEveryStageInOrderInChunks() {
        String id = UUID.randomUUID().toString();
        RunOutcome outcome = stub(id).run(RunInput.start(id, spec(20), new RunOptions(6, 5, 2, 0)));
        assertEquals("SUCCEEDED", outcome.status());
        // Retention after every chunk that leaves steps in its phase, and where each phase ends.
        assertEquals(java.util.List.of("prepareData", "save:prepareData", "chunk:6", "gc", "chunk:10",
                "save:sparsePhase", "gc", "chunk:16", "gc", "chunk:20", "save:adapterPhase", "gc", "merge@20", "save:merge", "eval", "save:eval",
                "export", "save:export", "finalize", "save:finalize"), fakes.calls);
        assertEquals("SUCCEEDED", fakes.finished.get(id));
    }

    @Test
    void aDenseRunTrainsEveryStepInTheSparsePhaseBecauseItHasNoAdapters() {
        String id = UUID.randomUUID().toString();
        ResolvedSpec dense = RunSpecCodec.parseResolved("""
                {"name": "wf", "sparsity": {"mode": "dense"}, "training": {"steps": 20}, "adapters": {"start": 0.5},
                 "data": {"corpus": ["/corpus.txt"]}}""");
        RunOutcome outcome = stub(id).run(RunInput.start(id, dense, new RunOptions(10, 5, 2, 0)));
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals(java.util.List.of("chunk:10", "gc", "chunk:20", "save:sparsePhase", "gc", "save:adapterPhase",
                "gc"), fakes.calls.subList(2, 9));
    }

    @Test
    void continueAsNewKeepsTheRunGoing() {
        String id = UUID.randomUUID().toString();
        RunOutcome outcome = stub(id).run(RunInput.start(id, spec(20), new RunOptions(3, 5, 2, 1)));
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals(8, fakes.calls.stream().filter(c -> c.startsWith("chunk:")).count());
        assertEquals(Stage.values().length, outcome.results().size(), "results survive continue-as-new");
    }

    @Test
    void invalidSpecFailsAtOnceNamingTheField() {
        String id = UUID.randomUUID().toString();
        RunSpec bad = RunSpecCodec.parse("""
                {"name": "bad", "model": {"preset": "tiny", "dModel": 63}, "data": {"corpus": ["/c.txt"]}}""");
        WorkflowFailedException e = assertThrows(WorkflowFailedException.class,
                () -> stub(id).run(RunInput.start(id, bad, null)));
        String message = ((ApplicationFailure) e.getCause()).getOriginalMessage();
        assertTrue(message.contains("model.dModel"), message);
        assertTrue(fakes.finished.get(id).startsWith("FAILED: invalid run spec"), fakes.finished.get(id));
        assertTrue(fakes.calls.isEmpty(), "nothing ran: " + fakes.calls);
    }

    @Test
    void unreadableCorpusFailsWithoutRetrying() {
        fakes.corpusError = "data.corpus: s3://slope/missing.txt does not exist";
        String id = UUID.randomUUID().toString();
        assertThrows(WorkflowFailedException.class, () -> stub(id).run(RunInput.start(id, spec(10), null)));
        assertEquals("FAILED: data.corpus: s3://slope/missing.txt does not exist", fakes.finished.get(id));
        assertEquals(1, fakes.calls.stream().filter("prepareData"::equals).count(), "not retried");
    }

    @Test
    void retryFromStageSkipsEarlierStagesUsingTheirResults() {
        String id = UUID.randomUUID().toString();
        fakes.steps.put(id, 20);
        CheckpointRef last = new CheckpointRef(20, "runs/x/checkpoints/20/", "a".repeat(64));
        Map<Stage, StageResult> earlier = Map.of(
                Stage.PREPARE_DATA, StageResult.dataset("d1", Map.of()),
                Stage.SPARSE_PHASE, StageResult.phase(Stage.SPARSE_PHASE, last),
                Stage.ADAPTER_PHASE, StageResult.phase(Stage.ADAPTER_PHASE, last),
                Stage.MERGE, StageResult.output(Stage.MERGE, "p", Map.of()),
                Stage.EVAL, StageResult.output(Stage.EVAL, null, Map.of()));
        RunOutcome outcome = stub(id).run(new RunInput(id, spec(20).toRunSpec(), null, Stage.MERGE, earlier, null));
        assertEquals("SUCCEEDED", outcome.status());
        assertFalse(fakes.calls.contains("prepareData"));
        assertTrue(fakes.calls.stream().noneMatch(c -> c.startsWith("chunk:")), fakes.calls.toString());
        assertEquals("merge@20", fakes.calls.getFirst(), "merge and every later stage run again");

        String other = UUID.randomUUID().toString();
        WorkflowFailedException e = assertThrows(WorkflowFailedException.class, () -> stub(other).run(
                new RunInput(other, spec(20).toRunSpec(), null, Stage.EVAL, Map.of(), null)));
        assertTrue(((ApplicationFailure) e.getCause()).getOriginalMessage().contains(
                "fromStage: eval needs the result of stage prepareData"), e.getCause().getMessage());
    }

    @Test
    void pauseStopsTrainingAndResumeContinues() throws Exception {
        fakes.stepMillis = 100;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = stub(id);
        WorkflowClient.start(workflow::run, RunInput.start(id, spec(40), new RunOptions(40, 5, 2, 0)));
        waitFor(() -> fakes.steps.getOrDefault(id, 0) >= 3);
        RunProgress paused = workflow.pause();
        assertTrue(paused.paused());
        assertEquals("PAUSED", paused.status());
        int stoppedAt = fakes.steps.get(id);
        assertTrue(stoppedAt < 20, "the chunk stopped at a step boundary: " + stoppedAt);
        assertTrue(fakes.statuses.contains("sparsePhase:PAUSED"), fakes.statuses.toString());
        Thread.sleep(500);
        assertEquals(stoppedAt, fakes.steps.get(id), "no training while paused");
        WorkflowUpdateException twice = assertThrows(WorkflowUpdateException.class, workflow::pause);
        assertTrue(twice.getCause().getMessage().contains("already paused"), twice.getCause().getMessage());
        assertFalse(workflow.resume().paused());
        WorkflowUpdateException notPaused = assertThrows(WorkflowUpdateException.class, workflow::resume);
        assertTrue(notPaused.getCause().getMessage().contains("not paused"), notPaused.getCause().getMessage());
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        assertTrue(fakes.statuses.contains("sparsePhase:RUNNING"), fakes.statuses.toString());
    }

    @Test
    void cancelStopsTheChunkAtAStepBoundaryAndRecordsCancelled() throws Exception {
        fakes.stepMillis = 100;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = stub(id);
        WorkflowClient.start(workflow::run, RunInput.start(id, spec(40), new RunOptions(40, 5, 2, 0)));
        waitFor(() -> fakes.steps.getOrDefault(id, 0) >= 3);
        WorkflowStub.fromTyped(workflow).cancel();
        WorkflowFailedException e = assertThrows(WorkflowFailedException.class,
                () -> WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class));
        assertTrue(e.getCause() instanceof CanceledFailure, e.getCause().toString());
        assertEquals("CANCELLED", fakes.finished.get(id));
        assertTrue(fakes.calls.stream().anyMatch(c -> c.startsWith("stopped:")), "the chunk saw the cancel and "
                + "stopped (the real one commits a checkpoint there): " + fakes.calls);
        assertEquals("gc", fakes.calls.getLast(), "retention runs for a cancelled run too: " + fakes.calls);
    }

    @Test
    void aFailedRunGetsRetentionBeforeItIsRecordedFailed() {
        fakes.failingChunkStop = 10;
        String id = UUID.randomUUID().toString();
        assertThrows(WorkflowFailedException.class,
                () -> stub(id).run(RunInput.start(id, spec(20), new RunOptions(6, 5, 2, 0))));
        assertEquals("FAILED: chunk to 10 failed", fakes.finished.get(id));
        assertEquals(java.util.List.of("chunk:6", "gc", "chunk:10", "gc"), fakes.calls.subList(2, 6));
    }

    // --- data-parallel chunks (issue 8): the rendezvous, failure and re-shard logic, with a fake collective

    static ResolvedSpec groupSpec(int steps, int gradAccum) {
        return RunSpecCodec.parseResolved("""
                {"name": "dp", "training": {"steps": %d, "gradAccum": %d}, "adapters": {"start": 0.5},
                 "data": {"corpus": ["/corpus.txt"]}}""".formatted(steps, gradAccum));
    }

    @Test
    void rankZeroReportsItsCollectiveAndTheWorkflowStartsTheOtherRanksWithIt() {
        String id = UUID.randomUUID().toString();
        RunOutcome outcome = stub(id).run(RunInput.start(id, groupSpec(20, 6), new RunOptions(20, 5, 2, 0, 3)));
        assertEquals("SUCCEEDED", outcome.status());
        var calls = fakes.calls;
        int listens = calls.indexOf("rank0 listens g1 on 127.0.0.1:1:101 x3");
        assertTrue(listens >= 0, calls.toString());
        for (int rank = 1; rank < 3; rank++) {
            int join = calls.indexOf("rank" + rank + " joins g1 on 127.0.0.1:1:101");
            assertTrue(join > listens, "rank " + rank + " started after rank 0's report, with its id: " + calls);
        }
        // Both phases ran as groups (attempts 1 and 2), never through the one-rank activity.
        assertTrue(calls.contains("rank0 listens g2 on 127.0.0.1:1:102 x3"), calls.toString());
        assertTrue(calls.stream().noneMatch(c -> c.startsWith("chunk:")), calls.toString());
        assertEquals(20, fakes.steps.get(id));
        assertEquals("merge@20", calls.get(calls.indexOf("save:adapterPhase") + 2));
    }

    @Test
    void ranksThatCannotShareGradAccumFailAtOnceNamingTheFields() {
        String id = UUID.randomUUID().toString();
        WorkflowFailedException e = assertThrows(WorkflowFailedException.class, () -> stub(id).run(
                RunInput.start(id, groupSpec(20, 3), new RunOptions(20, 5, 2, 0, 2))));
        String message = ((ApplicationFailure) e.getCause()).getOriginalMessage();
        assertTrue(message.contains("options.ranks") && message.contains("training.gradAccum = 3"), message);
        assertTrue(fakes.calls.isEmpty(), "nothing ran: " + fakes.calls);
        assertThrows(IllegalArgumentException.class, () -> new RunOptions(20, 5, 2, 0, -1));
        assertEquals(1, new RunOptions(20, 5, 2, 0, 0).ranks(), "inputs from before ranks existed mean one rank");
    }

    @Test
    void collectiveReadyIsRefusedUnlessItIsTheAwaitedAttemptsFirstReport() throws Exception {
        fakes.holdRendezvous = true;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = stub(id);
        WorkflowClient.start(workflow::run, RunInput.start(id, groupSpec(20, 2), new RunOptions(20, 5, 2, 0, 2)));
        waitFor(() -> fakes.calls.contains("rank0 listens g1 on 127.0.0.1:1:101 x2"));
        assertRefused(() -> workflow.collectiveReady(new CollectiveRendezvous(1, "not an id")), "host:port:nonce");
        assertRefused(() -> workflow.collectiveReady(new CollectiveRendezvous(7, "127.0.0.1:9:ab")),
                "no rendezvous is awaited for chunk attempt 7");
        assertRefused(() -> workflow.setRanks(4), "training.gradAccum must be a multiple of ranks");
        assertRefused(() -> workflow.setRanks(0), "ranks: must be 1 to 64 (got 0)");
        assertRefused(() -> workflow.setRanks(65), "ranks: must be 1 to 64 (got 65)");
        fakes.holdRendezvous = false; // rank 0 reports; then a second report for the same attempt is refused
        waitFor(() -> fakes.calls.stream().anyMatch(c -> c.startsWith("rank1 joins g1")));
        assertRefused(() -> workflow.collectiveReady(new CollectiveRendezvous(1, "127.0.0.1:9:ab")),
                "no rendezvous is awaited");
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        assertTrue(fakes.calls.stream().noneMatch(c -> c.contains("127.0.0.1:9:ab")), fakes.calls.toString());
    }

    /** A 40-step run on two ranks in one chunk per phase, started and past its third step. */
    private SlopeRunWorkflow startTwoRanksAndWaitForTraining(String id) throws InterruptedException {
        fakes.stepMillis = 50;
        SlopeRunWorkflow workflow = stub(id);
        WorkflowClient.start(workflow::run, RunInput.start(id, groupSpec(40, 2), new RunOptions(40, 5, 2, 0, 2)));
        waitFor(() -> fakes.steps.getOrDefault(id, 0) >= 3);
        return workflow;
    }

    private static void assertRefused(org.junit.jupiter.api.function.Executable update, String expected) {
        WorkflowUpdateException e = assertThrows(WorkflowUpdateException.class, update);
        assertTrue(e.getCause().getMessage().contains(expected), e.getCause().getMessage());
    }

    @Test
    void aFailedRankCancelsEveryRankAndTheChunkRestartsFromTheLastCheckpoint() throws Exception {
        fakes.failingRank = 1;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = startTwoRanksAndWaitForTraining(id);
        fakes.failNow = true;
        waitFor(() -> fakes.calls.stream().anyMatch(c -> c.startsWith("rank0 listens g2")));
        int failedAt = Integer.parseInt(fakes.calls.stream().filter(c -> c.startsWith("rank1 fails at "))
                .findFirst().orElseThrow().substring("rank1 fails at ".length()));
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        var calls = fakes.calls;
        int cancelled = calls.indexOf("cancelled:0");
        assertTrue(cancelled > calls.indexOf("rank1 fails at " + failedAt), "rank 0, blocked on the failed rank, "
                + "was cancelled: " + calls);
        assertTrue(calls.indexOf("rank0 listens g2 on 127.0.0.1:1:102 x2") > cancelled, "the new attempt started "
                + "only after every rank of the old one had ended: " + calls);
        assertTrue(calls.contains("rank1 joins g2 on 127.0.0.1:1:102"), calls.toString());
        assertEquals(40, fakes.steps.get(id));
    }

    @Test
    void afterAFailureTheChunkRestartsOnTheRankCountSetMeanwhile() throws Exception {
        fakes.failingRank = 1;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = startTwoRanksAndWaitForTraining(id);
        workflow.setRanks(1); // the running group keeps its two ranks
        Thread.sleep(200);
        assertTrue(fakes.calls.stream().noneMatch(c -> c.startsWith("cancelled:")), fakes.calls.toString());
        fakes.failNow = true;
        waitFor(() -> fakes.calls.stream().anyMatch(c -> c.startsWith("chunk:")));
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        var calls = fakes.calls;
        assertTrue(calls.indexOf("chunk:20") > calls.indexOf("cancelled:0"), "resumed on one rank: " + calls);
        assertTrue(calls.stream().noneMatch(c -> c.startsWith("rank0 listens g2")), calls.toString());
        assertEquals(40, fakes.steps.get(id));
    }

    @Test
    void pauseStopsEveryRankAfterTheSameStepAndResumeStartsANewGroup() throws Exception {
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = startTwoRanksAndWaitForTraining(id);
        assertTrue(workflow.pause().paused());
        // Rank 0 alone was cancelled: it had the group stop after the step it had done, and reported the cancellation
        // then; rank 1 ended its chunk normally after the same step. No collective was aborted.
        var calls = fakes.calls;
        String paused = calls.stream().filter(c -> c.startsWith("paused:0 after ")).findFirst().orElseThrow(
                () -> new AssertionError("rank 0 did not stop for the pause: " + calls));
        String step = paused.substring("paused:0 after ".length());
        assertTrue(Integer.parseInt(step) > 0, calls.toString());
        assertTrue(calls.contains("stopped:1 after " + step), calls.toString());
        assertTrue(calls.stream().noneMatch(c -> c.startsWith("aborted:") || c.equals("cancelled:1")),
                calls.toString());
        assertEquals(Integer.parseInt(step), fakes.steps.get(id));
        workflow.resume();
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        assertTrue(fakes.calls.contains("rank1 joins g2 on 127.0.0.1:1:102"), fakes.calls.toString());
    }

    @Test
    void pauseBeforeTheOtherRanksStartCancelsTheWholeGroup() throws Exception {
        fakes.holdRendezvous = true;
        fakes.stepMillis = 50;
        String id = UUID.randomUUID().toString();
        SlopeRunWorkflow workflow = stub(id);
        WorkflowClient.start(workflow::run, RunInput.start(id, groupSpec(40, 2), new RunOptions(40, 5, 2, 0, 2)));
        waitFor(() -> fakes.calls.stream().anyMatch(c -> c.startsWith("rank0 listens g1")));
        assertTrue(workflow.pause().paused());
        var calls = fakes.calls;
        assertTrue(calls.contains("cancelled:0"), calls.toString());
        assertTrue(calls.stream().noneMatch(c -> c.startsWith("paused:0") || c.startsWith("rank1 joins g1")),
                calls.toString());
        fakes.holdRendezvous = false;
        workflow.resume();
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        assertEquals(40, fakes.steps.get(id));
    }

    static void waitFor(java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out");
            }
            Thread.sleep(20);
        }
    }

    /**
     * Histories for the replay test; refreshed only by `mvn -pl workflows test -Dslope.refreshHistories=true` (which
     * leaves older histories, such as run-two-ranks-paused-v0.json, as they are).
     */
    @Test
    void recordHistoriesWhenAskedTo() throws Exception {
        if (!Boolean.getBoolean("slope.refreshHistories")) {
            return;
        }
        String id = "00000000-0000-0000-0000-000000000001";
        stub(id).run(RunInput.start(id, spec(20), new RunOptions(6, 5, 2, 0)));
        String json = client.fetchHistory(SlopeRunWorkflow.workflowId(id)).toJson(true);
        Path file = Path.of("src/test/resources/histories/run-all-stages.json");
        Files.createDirectories(file.getParent());
        Files.writeString(file, json);

        // Two ranks, paused mid-chunk and resumed (run-two-ranks-paused-v0.json is the same, recorded before the
        // graceful group pause: its pause cancelled both ranks).
        String paused = "00000000-0000-0000-0000-000000000002";
        SlopeRunWorkflow workflow = startTwoRanksAndWaitForTraining(paused);
        assertTrue(workflow.pause().paused());
        workflow.resume();
        fakes.stepMillis = 5;
        assertEquals("SUCCEEDED", WorkflowStub.fromTyped(workflow).getResult(RunOutcome.class).status());
        Files.writeString(file.resolveSibling("run-two-ranks-paused.json"),
                client.fetchHistory(SlopeRunWorkflow.workflowId(paused)).toJson(true));
    }
}
