package io.slope.workflows.run;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.CheckpointRef;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.temporal.activity.Activity;
import io.temporal.client.ActivityCompletionException;
import io.temporal.failure.ApplicationFailure;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Stand-ins for the real activities, for workflow-logic tests on Temporal's test server (each real activity runs in
 * the end-to-end suite). Training "steps" take {@code stepMillis} of real time, heartbeat, and stop at a step boundary
 * when cancelled, as the real worker does.
 */
final class FakeActivities implements PipelineActivities, ModelActivities {
    final List<String> calls = new CopyOnWriteArrayList<>();
    final Map<String, String> finished = new ConcurrentHashMap<>();
    final Map<String, Integer> steps = new ConcurrentHashMap<>();
    final List<String> statuses = new CopyOnWriteArrayList<>();
    volatile long stepMillis = 20;
    volatile String corpusError;
    /** A non-retryable failure of every chunk that would stop at this step (as a worker's bad shape would be). */
    volatile int failingChunkStop = -1;
    /** A rank that throws (a retryable failure, once) as soon as it has joined and {@link #failNow} is set. */
    volatile int failingRank = -1;
    volatile boolean failNow;
    /** Rank 0 waits for this before it reports its collective, so a test can look at the waiting workflow. */
    volatile boolean holdRendezvous;
    /** Fake collectives by id: each rank's steps done; a rank may start step s only when every rank has done s. */
    final Map<String, AtomicIntegerArray> groups = new ConcurrentHashMap<>();
    /** Fake collectives aborted by a cancelled rank: their other ranks fail as a real collective's would. */
    final java.util.Set<String> aborted = ConcurrentHashMap.newKeySet();
    /**
     * The step after which a fake collective's ranks agreed to stop: set by rank 0 cancelled for a pause (as the real
     * loop's agreed stop), read by every rank at its next step boundary.
     */
    final Map<String, Integer> agreedStops = new ConcurrentHashMap<>();

    @Override
    public StageResult prepareData(String runId, ResolvedSpec spec) {
        calls.add("prepareData");
        if (corpusError != null) {
            throw ApplicationFailure.newNonRetryableFailure(corpusError, "InvalidCorpus");
        }
        return StageResult.dataset("d" + runId.length(), Map.of("trainTokens", 1000.0));
    }

    @Override
    public void markStage(String runId, Stage stage, String status) {
        statuses.add(stage.wireName() + ":" + status);
    }

    @Override
    public void saveStageResult(String runId, StageResult result) {
        calls.add("save:" + result.stage().wireName());
    }

    @Override
    public void collectGarbage(String runId, int keepLast) {
        calls.add("gc");
    }

    @Override
    public StageResult finalizeRun(String runId, Map<Stage, StageResult> results) {
        calls.add("finalize");
        return StageResult.output(Stage.FINALIZE, "runs/" + runId + "/export/", Map.of("artifacts", 3.0));
    }

    @Override
    public void finishRun(String runId, String status, String error) {
        finished.put(runId, status + (error == null ? "" : ": " + error));
    }

    @Override
    public ChunkResult trainChunk(ChunkRequest request) {
        calls.add("chunk:" + request.stopStep());
        if (request.stopStep() == failingChunkStop) {
            throw ApplicationFailure.newNonRetryableFailure("chunk to " + failingChunkStop + " failed", "Boom");
        }
        var context = Activity.getExecutionContext();
        int step = steps.getOrDefault(request.runId(), 0);
        while (step < request.stopStep()) {
            try {
                Thread.sleep(stepMillis);
                context.heartbeat(step);
            } catch (ActivityCompletionException e) {
                steps.put(request.runId(), step);
                calls.add("stopped:" + step);
                throw e;
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            step++;
            steps.put(request.runId(), step);
        }
        return new ChunkResult(step, new CheckpointRef(step, "runs/" + request.runId() + "/checkpoints/" + step + "/",
                "0".repeat(64)), TaskQueues.GPU);
    }

    @Override
    public StageResult merge(ModelRequest request) {
        calls.add("merge@" + request.finalCheckpoint().step());
        return StageResult.output(Stage.MERGE, "runs/" + request.runId() + "/merge/", Map.of());
    }

    @Override
    public StageResult evaluate(ModelRequest request) {
        calls.add("eval");
        return StageResult.output(Stage.EVAL, null, Map.of("val_loss_merged", 2.5));
    }

    @Override
    public StageResult export(ModelRequest request) {
        calls.add("export");
        return StageResult.output(Stage.EXPORT, "runs/" + request.runId() + "/export/", Map.of("files", 3.0));
    }

    /**
     * A rank of a group chunk. Rank 0 "listens" (registers a fake collective), reports its id by the Update and waits
     * for its peers; every step waits for all ranks (like an all-reduce), so a rank that fails leaves the others
     * waiting until the workflow cancels them, as a real collective would until aborted.
     */
    @Override
    public ChunkResult trainChunkAsRank(RankedChunk request) {
        var context = Activity.getExecutionContext();
        String runId = request.chunk().runId();
        int rank = request.rank();
        try {
            String id;
            if (rank == 0) {
                id = "127.0.0.1:1:" + Integer.toHexString(0x100 + request.group());
                groups.put(id, new AtomicIntegerArray(request.ranks()));
                calls.add("rank0 listens g" + request.group() + " on " + id + " x" + request.ranks());
                while (holdRendezvous) {
                    pause(context);
                }
                context.getWorkflowClient().newWorkflowStub(SlopeRunWorkflow.class, context.getInfo().getWorkflowId())
                        .collectiveReady(new CollectiveRendezvous(request.group(), id));
            } else {
                id = request.collectiveId();
                calls.add("rank" + rank + " joins g" + request.group() + " on " + id);
            }
            collectiveIdOfThisRank.set(id);
            AtomicIntegerArray group = groups.get(id);
            int start = steps.getOrDefault(runId, 0);
            ActivityCompletionException pausedBy = null;
            steps:
            for (int step = start; step < request.chunk().stopStep(); step++) {
                if (stopAgreedBefore(id, step)) {
                    break;
                }
                if (rank == failingRank && failNow) {
                    failingRank = -1;
                    calls.add("rank" + rank + " fails at " + step);
                    throw ApplicationFailure.newFailure("rank " + rank + " lost its GPU", "DeviceLost");
                }
                group.set(rank, step - start + 1);
                while (!allReached(group, step - start + 1)) {
                    if (aborted.contains(id)) {
                        calls.add("aborted:" + rank);
                        throw ApplicationFailure.newFailure("collective aborted by a peer", "CollectiveAborted");
                    }
                    if (stopAgreedBefore(id, step)) {
                        break steps;
                    }
                    pausedBy = beat(context, rank, id, runId, pausedBy);
                    if (pausedBy != null) {
                        break steps;
                    }
                }
                pausedBy = beat(context, rank, id, runId, pausedBy);
                if (pausedBy != null) {
                    break;
                }
                if (rank == 0) {
                    steps.put(runId, step + 1);
                }
            }
            // Stopped by an agreement: every rank has done the steps rank 0 had done when it asked (rank 0 records no
            // step after that).
            int done = agreedStops.getOrDefault(id, steps.getOrDefault(runId, 0));
            if (pausedBy != null) {
                calls.add("paused:0 after " + done);
                throw pausedBy; // rank 0 reports the pause's cancellation once the group has stopped
            }
            if (agreedStops.containsKey(id)) {
                calls.add("stopped:" + rank + " after " + done);
            }
            return new ChunkResult(done, new CheckpointRef(done, "runs/" + runId + "/checkpoints/" + done + "/",
                    "0".repeat(64)), null);
        } catch (ActivityCompletionException e) {
            calls.add("cancelled:" + rank);
            String id = collectiveIdOfThisRank.get();
            if (id != null && !(rank == 0 && agreedStops.containsKey(id))) {
                aborted.add(id); // as the real worker aborts its collective (not rank 0 stopping for a pause)
            }
            throw e;
        } finally {
            collectiveIdOfThisRank.remove();
        }
    }

    private final ThreadLocal<String> collectiveIdOfThisRank = new ThreadLocal<>();

    private boolean stopAgreedBefore(String id, int step) {
        Integer agreed = agreedStops.get(id);
        return agreed != null && agreed <= step;
    }

    /**
     * A heartbeat between steps. Rank 0 cancelled while its workflow is pausing does not abort: it has the group agree
     * to stop after the steps done so far and reports the cancellation when it has stopped (as the real worker does).
     */
    private ActivityCompletionException beat(io.temporal.activity.ActivityExecutionContext context, int rank,
            String id, String runId, ActivityCompletionException pausedBy) {
        try {
            pause(context);
            return pausedBy;
        } catch (ActivityCompletionException e) {
            if (pausedBy != null) {
                return pausedBy;
            }
            if (rank == 0 && context.getWorkflowClient().newWorkflowStub(SlopeRunWorkflow.class,
                    context.getInfo().getWorkflowId()).progress().paused()) {
                agreedStops.putIfAbsent(id, steps.getOrDefault(runId, 0));
                return e;
            }
            throw e;
        }
    }

    private static boolean allReached(AtomicIntegerArray group, int steps) {
        for (int r = 0; r < group.length(); r++) {
            if (group.get(r) < steps) {
                return false;
            }
        }
        return true;
    }

    private void pause(io.temporal.activity.ActivityExecutionContext context) {
        try {
            Thread.sleep(stepMillis);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
        context.heartbeat(null);
    }
}
