package io.slope.gpuworker;

import static io.slope.engine.parallel.SameModel.assertSameModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.catalogue.reconcile.Reconciler;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.localservices.ManagedProcess;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.enums.v1.EventType;
import io.temporal.api.history.v1.HistoryEvent;
import java.nio.file.Path;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Data-parallel chunks (issue 8) on the real servers with two GPU worker JVMs and the loopback TCP collective: the
 * rendezvous through the workflow, the result against one rank, and a rank killed mid-run with the run resumed on one.
 */
@org.junit.jupiter.api.TestMethodOrder(org.junit.jupiter.api.MethodOrderer.MethodName.class)
class DataParallelEndToEndTest {
    private static final int STEPS = 24;
    private static PipelineHarness harness;
    private static ManagedProcess[] workers;
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() throws Exception {
        harness = new PipelineHarness("e2e_dp");
        workers = new ManagedProcess[] {harness.startGpuWorker(), harness.startGpuWorker()};
    }

    @AfterAll
    static void stop() {
        harness.close();
    }

    /** The harness's tiny run in fp64, with two micro-batches per step for two ranks to share. */
    private static ResolvedSpec spec(int steps) throws Exception {
        ResolvedSpec tiny = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), steps);
        String json = RunSpecCodec.toJson(tiny).replaceAll("\"precision\"\\s*:\\s*\"fp32\"", "\"precision\": \"fp64\"")
                .replaceAll("\"gradAccum\"\\s*:\\s*1\\b", "\"gradAccum\": 2");
        ResolvedSpec spec = RunSpecCodec.parseResolved(json);
        assertEquals("fp64", spec.precision().wireName(), json);
        assertEquals(2, spec.training().gradAccum(), json);
        return spec;
    }

    /**
     * A run whose workflow was lost, with two ranks stored in the catalogue (as the API stores a submit's options or
     * an accepted setRanks): the reconciler starts it again on two ranks, not on its own default of one.
     */
    @Test
    void a0_theReconcilerStartsARunAgainOnItsStoredRanks() throws Exception {
        UUID id = UUID.randomUUID();
        harness.catalogue.createRun(id, "tester", spec(STEPS), SlopeRunWorkflow.workflowId(id.toString()));
        assertEquals(1, (int) harness.database().transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET ranks = 2 WHERE id = ?")) {
                ps.setObject(1, id);
                return ps.executeUpdate();
            }
        }));
        List<UUID> restarted = new Reconciler(harness.client, harness.catalogue, new RunOptions(STEPS, 5, 2, 0))
                .reconcile();
        assertTrue(restarted.contains(id), restarted.toString());
        assertEquals("SUCCEEDED", harness.result(id, RunOutcome.class, Duration.ofMinutes(8)).status());
        List<String> ranks = rankActivities(id);
        // One chunk per phase (chunkSteps = STEPS), each trained by ranks 0 and 1.
        assertEquals(4, ranks.size(), ranks.toString());
        assertEquals(2, ranks.stream().filter(r -> r.contains("\"rank\":1")).count(), ranks.toString());
    }

    /**
     * A pause mid-chunk of a two-rank run whose only periodic checkpoints are at its first and last step: the workflow
     * cancels rank 0 alone, whose stop reaches rank 1 through the loop's agreed stop, so both stop after the same step
     * and rank 0 commits a checkpoint there (rank 1 ends its chunk normally). The run resumes from that checkpoint and
     * ends with the weights of an uninterrupted run.
     */
    @Test
    void a1_aPausedGroupStopsAfterAnAgreedStepWithACheckpointAndResumesFromIt() throws Exception {
        int steps = 80;
        int sparseEnd = 60; // adapters start at 0.75 · 80: the first chunk ends there
        // Steps long enough (dModel 128, seqLen 64) that the pause lands well inside the first chunk.
        ResolvedSpec spec = RunSpecCodec.parseResolved(RunSpecCodec.toJson(spec(steps))
                .replaceAll("\"checkpointEvery\"\\s*:\\s*\\d+", "\"checkpointEvery\": " + steps)
                .replaceAll("\"dModel\"\\s*:\\s*64\\b", "\"dModel\": 128")
                .replaceAll("\"seqLen\"\\s*:\\s*32\\b", "\"seqLen\": 64"));
        assertEquals(steps, spec.checkpointEvery());
        assertEquals(128, spec.model().dModel());
        UUID id = harness.submit(spec, new RunOptions(steps, 5, 2, 0, 2));
        SlopeRunWorkflow workflow = harness.client.newWorkflowStub(SlopeRunWorkflow.class,
                SlopeRunWorkflow.workflowId(id.toString()));
        PipelineHarness.await("two ranks training", Duration.ofMinutes(4),
                () -> stepsDone(id) >= 2 && rankActivities(id).size() == 2);
        assertEquals(0, harness.latestStep(id), "no periodic checkpoint before the pause");
        assertTrue(workflow.pause().paused());

        long pausedAt = harness.latestStep(id);
        assertTrue(pausedAt >= 2 && pausedAt < sparseEnd, "the pause's checkpoint is at step " + pausedAt
                + ", mid-chunk (the last periodic one is at step 0)");
        assertEquals(pausedAt, harness.finalCheckpoint(id, (int) pausedAt).checkpoint().step());
        // Rank 0 reported the pause's cancellation; rank 1 completed its chunk after the same step.
        List<String> events = activityEvents(id);
        assertEquals(List.of("TrainChunkAsRank", "TrainChunkAsRank",
                "TrainChunkAsRank ended (EVENT_TYPE_ACTIVITY_TASK_CANCELED)"), events.stream().filter(e -> e
                .startsWith("TrainChunkAsRank")).toList(), events.toString());
        assertEquals(List.of((int) pausedAt), completedRankSteps(id), "every rank stopped after the same step");

        workflow.resume();
        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
        assertEquals("SUCCEEDED", outcome.status());
        Checkpoint reference = harness.uninterrupted(spec, outcome.results().get(Stage.PREPARE_DATA).datasetId())
                .checkpoint();
        assertSameModel(reference, harness.finalCheckpoint(id, steps).checkpoint());
    }

    private static int stepsDone(UUID id) {
        try {
            return harness.catalogue.run(id).orElseThrow().stepsDone();
        } catch (Exception e) {
            return -1;
        }
    }

    /** The steps done that the run's completed TrainChunkAsRank activities reported, in order. */
    private static List<Integer> completedRankSteps(UUID id) {
        java.util.Map<Long, String> types = new java.util.HashMap<>();
        List<Integer> steps = new java.util.ArrayList<>();
        for (HistoryEvent e : history(id)) {
            if (e.getEventType() == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
                types.put(e.getEventId(), e.getActivityTaskScheduledEventAttributes().getActivityType().getName());
            } else if (e.getEventType() == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
                var done = e.getActivityTaskCompletedEventAttributes();
                if ("TrainChunkAsRank".equals(types.get(done.getScheduledEventId()))) {
                    String json = done.getResult().getPayloads(0).getData().toStringUtf8();
                    var m = java.util.regex.Pattern.compile("\"stepsDone\"\\s*:\\s*(\\d+)").matcher(json);
                    assertTrue(m.find(), json);
                    steps.add(Integer.parseInt(m.group(1)));
                }
            }
        }
        return steps;
    }

    @Test
    void a_twoRanksTrainToTheSameWeightsAsOne() throws Exception {
        ResolvedSpec spec = spec(STEPS);
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0, 2));
        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals(STEPS, harness.catalogue.run(id).orElseThrow().stepsDone());

        List<String> ranks = rankActivities(id);
        // Chunks end at steps 8, 16, 18 (the adapter phase starts at 0.75 · 24) and 24; two ranks each.
        assertEquals(8, ranks.size(), ranks.size() + " rank activities");
        assertEquals(4, ranks.stream().filter(r -> r.contains("\"rank\":1")).count(), ranks.toString());
        assertTrue(ranks.stream().filter(r -> r.contains("\"rank\":1")).allMatch(r -> r.matches(
                ".*\"collectiveId\":\"127\\.0\\.0\\.1:\\d+:[0-9a-f]+\".*")), "rank 1 started with rank 0's id: "
                + ranks);
        assertEquals(STEPS, progressSamples(id), "rank 0 alone records the loss curve, once per step");

        Checkpoint reference = harness.uninterrupted(spec, outcome.results().get(Stage.PREPARE_DATA).datasetId())
                .checkpoint();
        assertSameModel(reference, harness.finalCheckpoint(id, STEPS).checkpoint());
    }

    @Test
    void b_aRankKilledMidRunIsResumedOnOneRank() throws Exception {
        ResolvedSpec spec = spec(STEPS);
        UUID id = harness.submit(spec, new RunOptions(STEPS, 5, 2, 0, 2));
        SlopeRunWorkflow workflow = harness.client.newWorkflowStub(SlopeRunWorkflow.class,
                SlopeRunWorkflow.workflowId(id.toString()));
        PipelineHarness.await("a checkpoint after step 0", Duration.ofMinutes(4), () -> harness.latestStep(id) >= 5);
        workflow.setRanks(1); // the running group keeps two ranks; its restart takes one
        // Either rank will do: the other one is left waiting on the collective until the workflow cancels it.
        workers[0].kill();
        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
        assertEquals("SUCCEEDED", outcome.status());
        // The surviving rank either saw its peer's connection drop (and failed) or was cancelled by the workflow;
        // either way both ranks ended before the chunk went on with one rank.
        List<String> events = activityEvents(id);
        int oneRank = events.indexOf("TrainChunk");
        assertTrue(oneRank > 0, events.toString());
        assertEquals(2, events.subList(0, oneRank).stream().filter(e -> e.startsWith("TrainChunkAsRank ended"))
                .count(), events.toString());

        Checkpoint reference = harness.uninterrupted(spec, outcome.results().get(Stage.PREPARE_DATA).datasetId())
                .checkpoint();
        assertSameModel(reference, harness.finalCheckpoint(id, STEPS).checkpoint());
    }

    /**
     * A worker frozen mid-chunk (SIGSTOP: its sockets stay open, it stops heartbeating) is timed out by the workflow,
     * which cancels the other rank; the cancellation aborts that rank's collective, so its worker is free for the
     * one-rank restart well before the collective's own timeout ({@link GroupMember#COLLECTIVE_TIMEOUT})
     * would have freed it (without the abort the run finishes only after that timeout).
     */
    @Test
    void c_aFrozenRankIsTimedOutAndItsPeerAbortedRatherThanLeftWaiting() throws Exception {
        if (workers[0].alive()) {
            workers[0].kill(); // (when run alone) exactly two workers, so that the frozen one holds a rank
        }
        ManagedProcess frozen = harness.startGpuWorker();
        ResolvedSpec spec = spec(STEPS);
        UUID id = harness.submit(spec, new RunOptions(STEPS, 5, 2, 0, 2));
        SlopeRunWorkflow workflow = harness.client.newWorkflowStub(SlopeRunWorkflow.class,
                SlopeRunWorkflow.workflowId(id.toString()));
        PipelineHarness.await("a checkpoint after step 0", Duration.ofMinutes(4), () -> harness.latestStep(id) >= 5);
        workflow.setRanks(1);
        long frozenAt = System.currentTimeMillis();
        signal("STOP", frozen.pid());
        long seconds;
        try {
            RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
            seconds = (System.currentTimeMillis() - frozenAt) / 1000;
            assertEquals("SUCCEEDED", outcome.status());
        } finally {
            signal("CONT", frozen.pid());
            frozen.kill();
        }
        assertTrue(seconds < GroupMember.COLLECTIVE_TIMEOUT.toSeconds() - 30, "the run ended " + seconds
                + " s after the freeze: the surviving rank's worker was held until the collective's timeout");
        List<String> events = activityEvents(id);
        assertTrue(events.stream().anyMatch(e -> e.startsWith("TrainChunkAsRank ended (EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT")),
                events.toString());
        assertSameModel(harness.uninterrupted(spec, outcome(id)).checkpoint(),
                harness.finalCheckpoint(id, STEPS).checkpoint());
    }

    private static String outcome(UUID id) throws Exception {
        return harness.result(id, RunOutcome.class, Duration.ofSeconds(10)).results().get(Stage.PREPARE_DATA)
                .datasetId();
    }

    private static void signal(String signal, long pid) throws Exception {
        assertEquals(0, new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).inheritIO().start().waitFor());
    }

    /** The inputs of the run's TrainChunkAsRank activities, as JSON text. */
    private static List<String> rankActivities(UUID id) {
        return history(id).stream().filter(e -> e.getEventType() == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
                .map(HistoryEvent::getActivityTaskScheduledEventAttributes)
                .filter(a -> a.getActivityType().getName().equals("TrainChunkAsRank"))
                .map(a -> a.getInput().getPayloads(0).getData().toStringUtf8().replaceAll("\\s", "")).toList();
    }

    /** The run's activities in order: the type of each one scheduled, and "type ended (how)" where one did not succeed. */
    private static List<String> activityEvents(UUID id) {
        java.util.Map<Long, String> types = new java.util.HashMap<>();
        List<String> events = new java.util.ArrayList<>();
        for (HistoryEvent e : history(id)) {
            long scheduled = switch (e.getEventType()) {
                case EVENT_TYPE_ACTIVITY_TASK_FAILED -> e.getActivityTaskFailedEventAttributes().getScheduledEventId();
                case EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT ->
                        e.getActivityTaskTimedOutEventAttributes().getScheduledEventId();
                case EVENT_TYPE_ACTIVITY_TASK_CANCELED ->
                        e.getActivityTaskCanceledEventAttributes().getScheduledEventId();
                default -> -1;
            };
            if (e.getEventType() == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
                String type = e.getActivityTaskScheduledEventAttributes().getActivityType().getName();
                types.put(e.getEventId(), type);
                events.add(type);
            } else if (scheduled >= 0) {
                events.add(types.get(scheduled) + " ended (" + e.getEventType() + ")");
            }
        }
        return events;
    }

    private static List<HistoryEvent> history(UUID id) {
        return harness.client.fetchHistory(SlopeRunWorkflow.workflowId(id.toString())).getHistory().getEventsList();
    }

    private static int progressSamples(UUID id) throws Exception {
        return harness.database().transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM progress_samples WHERE run_id = ?")) {
                ps.setObject(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    return rs.getInt(1);
                }
            }
        });
    }
}
