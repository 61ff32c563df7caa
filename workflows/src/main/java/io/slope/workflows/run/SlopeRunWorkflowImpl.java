package io.slope.workflows.run;

import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecs;
import io.slope.spec.pipeline.CheckpointRef;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.temporal.activity.ActivityCancellationType;
import io.temporal.activity.ActivityOptions;
import io.temporal.api.enums.v1.TimeoutType;
import io.temporal.common.RetryOptions;
import io.temporal.failure.ActivityFailure;
import io.temporal.failure.ApplicationFailure;
import io.temporal.failure.CanceledFailure;
import io.temporal.failure.TemporalFailure;
import io.temporal.failure.TimeoutFailure;
import io.temporal.workflow.Async;
import io.temporal.workflow.CancellationScope;
import io.temporal.workflow.Functions;
import io.temporal.workflow.Promise;
import io.temporal.workflow.Workflow;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;

/**
 * The stages of a run in order, each one's result kept (and stored in Postgres) so a retry can start from any stage.
 * Training runs as chunks, each ending on a committed checkpoint: the first chunk goes to any GPU worker; later ones
 * to the worker that holds the model (its own queue, short ScheduleToStart), falling back to any worker, which then
 * restores the newest committed checkpoint. Pause cancels the running chunk, which checkpoints and stops; cancel does
 * the same and ends the run CANCELLED. Deterministic code only: everything else happens in activities.
 *
 * <p>With {@code ranks} > 1 each chunk is trained by a group of ranks on {@link TaskQueues#GPU} (one slot each),
 * restored from the last committed checkpoint: rank 0 starts first and reports its collective's id by the
 * {@code collectiveReady} Update, then ranks 1…N−1 start with it. When any rank fails or stops heartbeating, every
 * rank is cancelled (which aborts the collective) and the chunk starts again from the last committed checkpoint with
 * the rank count current then ({@code setRanks}). A pause cancels rank 0 alone (its own scope within the group's),
 * whose stop reaches every rank at the next step: all stop after that step, rank 0 with a committed checkpoint
 * ({@value #GRACEFUL_GROUP_PAUSE}, version 1; before, a pause cancelled the whole group like a failure). One rank takes
 * exactly the path it always did.
 */
public class SlopeRunWorkflowImpl implements SlopeRunWorkflow {
    private static final Logger log = Workflow.getLogger(SlopeRunWorkflowImpl.class);

    /** Bookkeeping must outlast a Postgres restart: retried without limit, backing off to 10 s. */
    private final PipelineActivities bookkeeping = Workflow.newActivityStub(PipelineActivities.class,
            ActivityOptions.newBuilder().setTaskQueue(TaskQueues.PIPELINE)
                    .setStartToCloseTimeout(Duration.ofSeconds(60))
                    .setRetryOptions(RetryOptions.newBuilder().setInitialInterval(Duration.ofMillis(500))
                            .setMaximumInterval(Duration.ofSeconds(10)).build())
                    .build());

    /** Data preparation and finalize: bounded retries; a bad corpus fails at once (non-retryable). */
    private final PipelineActivities pipeline = Workflow.newActivityStub(PipelineActivities.class,
            ActivityOptions.newBuilder().setTaskQueue(TaskQueues.PIPELINE)
                    .setStartToCloseTimeout(Duration.ofHours(2))
                    .setRetryOptions(RetryOptions.newBuilder().setInitialInterval(Duration.ofSeconds(1))
                            .setMaximumInterval(Duration.ofSeconds(30)).setMaximumAttempts(10).build())
                    .build());

    private RunInput input;
    private RunSpec spec;
    private Stage stage;
    private String status = "QUEUED";
    private int stepsDone;
    private CheckpointRef lastCheckpoint;
    private String workerQueue;
    private boolean paused;
    private boolean pauseInEffect;
    private boolean finished;
    private CancellationScope chunkScope;
    private int chunksThisRun;
    private int ranks = 1;
    /** The number of the current data-parallel chunk attempt, and the collective id its rank 0 reported (or null). */
    private int group;
    private boolean awaitingRendezvous;
    private String collectiveId;
    /**
     * Rank 0's own scope within the current group chunk once every rank is scheduled (graceful group pause only), and
     * whether a pause cancelled it: rank 0 then stops after a step that every rank agrees on, with a checkpoint.
     */
    private CancellationScope rankZeroScope;
    private boolean stoppingForPause;
    private final Map<Stage, StageResult> results = new EnumMap<>(Stage.class);

    @Override
    public RunOutcome run(RunInput in) {
        this.input = in;
        this.spec = in.spec();
        Stage start = in.carry() != null ? in.carry().stage()
                : in.fromStage() != null ? in.fromStage() : Stage.PREPARE_DATA;
        if (in.carry() != null) {
            stepsDone = in.carry().stepsDone();
            lastCheckpoint = in.carry().lastCheckpoint();
            workerQueue = in.carry().workerQueue();
            paused = in.carry().paused();
        }
        for (Map.Entry<Stage, StageResult> e : in.earlierResults().entrySet()) {
            if (e.getKey().ordinal() < start.ordinal()) {
                results.put(e.getKey(), e.getValue());
            }
        }
        ranks = in.options().ranks();
        stage = start;
        status = "RUNNING";
        Workflow.upsertTypedSearchAttributes(SearchAttributes.RUN_ID.valueSet(in.runId()),
                SearchAttributes.MODEL.valueSet(modelName(spec)), SearchAttributes.STATUS.valueSet(status),
                SearchAttributes.STAGE.valueSet(start.wireName()));
        try {
            try {
                spec = RunSpecs.resolveAndValidate(spec);
            } catch (InvalidSpecException e) {
                throw ApplicationFailure.newNonRetryableFailure(e.getMessage(), "InvalidSpec");
            }
            if (ranks > 1) {
                String error = RunOptions.ranksError(ranks, spec.training().gradAccum());
                if (error != null) {
                    throw ApplicationFailure.newNonRetryableFailure("options." + error, "InvalidOptions");
                }
            }
            for (Stage s : Stage.values()) {
                if (s.ordinal() < start.ordinal()) {
                    if (!results.containsKey(s)) {
                        throw ApplicationFailure.newNonRetryableFailure("fromStage: " + start.wireName() + " needs "
                                + "the result of stage " + s.wireName() + " from an earlier attempt, and there is "
                                + "none; retry from " + s.wireName() + " instead", "InvalidRetry");
                    }
                    continue;
                }
                runStage(s);
            }
            finished = true;
            setStatus("SUCCEEDED");
            bookkeeping.finishRun(in.runId(), "SUCCEEDED", null);
            Workflow.await(Workflow::isEveryHandlerFinished);
            return new RunOutcome(in.runId(), status, Map.copyOf(results));
        } catch (TemporalFailure e) {
            finished = true;
            if (CancellationScope.current().isCancelRequested()) {
                // The chunk has flushed its checkpoint (WAIT_CANCELLATION_COMPLETED); record the end outside the
                // cancelled scope, which would cancel these activities too.
                Workflow.newDetachedCancellationScope(() -> {
                    setStatus("CANCELLED");
                    bookkeeping.finishRun(in.runId(), "CANCELLED", null);
                }).run();
                throw e;
            }
            String message = Failures.message(e);
            setStatus("FAILED");
            bookkeeping.finishRun(in.runId(), "FAILED", message);
            throw ApplicationFailure.newNonRetryableFailure(message, "RunFailed");
        }
    }

    private void runStage(Stage s) {
        awaitIfPaused(s);
        enterStage(s);
        StageResult result = switch (s) {
            case PREPARE_DATA -> pipeline.prepareData(input.runId(), spec);
            case SPARSE_PHASE -> trainPhase(s, sparsePhaseEnd());
            case ADAPTER_PHASE -> trainPhase(s, totalSteps());
            case MERGE -> onModelWorker(a -> a.merge(modelRequest()));
            case EVAL -> onModelWorker(a -> a.evaluate(modelRequest()));
            case EXPORT -> onModelWorker(a -> a.export(modelRequest()));
            case FINALIZE -> pipeline.finalizeRun(input.runId(), Map.copyOf(results));
        };
        results.put(s, result);
        bookkeeping.saveStageResult(input.runId(), result);
        if (s == Stage.SPARSE_PHASE || s == Stage.ADAPTER_PHASE) {
            bookkeeping.collectGarbage(input.runId(), input.options().keepLastCheckpoints());
        }
    }

    private StageResult trainPhase(Stage phase, int end) {
        while (stepsDone < end) {
            awaitIfPaused(phase);
            int stop = Math.min(end, stepsDone + input.options().chunkSteps());
            ChunkRequest request = new ChunkRequest(input.runId(), spec, datasetId(), phase, stop,
                    input.options().chunkMinutes());
            ChunkResult chunk = ranks > 1 ? runGroupChunk(request) : runChunk(request);
            if (chunk != null) {
                stepsDone = chunk.stepsDone();
                lastCheckpoint = chunk.checkpoint();
                workerQueue = chunk.workerQueue();
                chunksThisRun++;
            }
            if (stepsDone < end && continueAsNewDue()) {
                Workflow.await(Workflow::isEveryHandlerFinished);
                RunOptions options = ranks == input.options().ranks() ? input.options()
                        : input.options().withRanks(ranks);
                Workflow.continueAsNew(new RunInput(input.runId(), spec, options, null, Map.copyOf(results),
                        new RunInput.Carry(phase, stepsDone, lastCheckpoint, workerQueue, paused)));
            }
        }
        CheckpointRef ref = lastCheckpoint;
        if (ref == null && phase == Stage.ADAPTER_PHASE && results.containsKey(Stage.SPARSE_PHASE)) {
            ref = results.get(Stage.SPARSE_PHASE).checkpoint();
        }
        if (ref == null) {
            // Nothing left to train in this phase and no checkpoint known here: ask a worker for the newest one.
            ChunkResult chunk = runChunk(new ChunkRequest(input.runId(), spec, datasetId(), phase, end,
                    input.options().chunkMinutes()));
            stepsDone = chunk.stepsDone();
            ref = chunk.checkpoint();
            workerQueue = chunk.workerQueue();
        }
        lastCheckpoint = ref;
        return StageResult.phase(phase, ref);
    }

    private boolean continueAsNewDue() {
        int after = input.options().continueAsNewAfterChunks();
        return (after > 0 && chunksThisRun >= after) || Workflow.getInfo().isContinueAsNewSuggested();
    }

    /** One chunk; null when it was stopped for a pause (its checkpoint is committed). */
    private ChunkResult runChunk(ChunkRequest request) {
        try {
            return onModelWorker(a -> a.trainChunk(request));
        } catch (ActivityFailure e) {
            if (paused && e.getCause() instanceof CanceledFailure
                    && !CancellationScope.current().isCancelRequested()) {
                return null;
            }
            throw e;
        }
    }

    /**
     * One chunk trained by {@code ranks} ranks; null when it was stopped for a pause. A failed attempt (any rank failed,
     * timed out or could not rendezvous) cancels the whole group and starts again from the last committed checkpoint,
     * with the rank count current then; one rank goes the ordinary way.
     */
    private ChunkResult runGroupChunk(ChunkRequest request) {
        for (int failures = 0; ; ) {
            if (ranks == 1) {
                return runChunk(request);
            }
            boolean gracefulPause = Workflow.getVersion(GRACEFUL_GROUP_PAUSE, Workflow.DEFAULT_VERSION, 1) >= 1;
            int size = ranks;
            int attempt = ++group;
            collectiveId = null;
            awaitingRendezvous = true;
            stoppingForPause = false;
            ModelActivities stub = groupStub();
            List<Promise<ChunkResult>> members = new ArrayList<>();
            CancellationScope scope = Workflow.newCancellationScope(() -> {
                CancellationScope zero = Workflow.newCancellationScope(() -> members.add(Async.function(
                        stub::trainChunkAsRank, new RankedChunk(request, 0, size, attempt, null))));
                zero.run();
                Promise<ChunkResult> rankZero = members.getFirst();
                Async.procedure(() -> {
                    Workflow.await(() -> collectiveId != null || rankZero.isCompleted());
                    awaitingRendezvous = false;
                    if (collectiveId != null && !rankZero.isCompleted()) {
                        for (int rank = 1; rank < size; rank++) {
                            members.add(Async.function(stub::trainChunkAsRank,
                                    new RankedChunk(request, rank, size, attempt, collectiveId)));
                        }
                        if (gracefulPause) {
                            rankZeroScope = zero;
                        }
                    }
                });
            });
            chunkScope = scope;
            try {
                scope.run();
                Workflow.await(() -> groupFailure(members) != null
                        || (members.getFirst().isCompleted() && members.stream().allMatch(Promise::isCompleted)));
                RuntimeException failure = groupFailure(members);
                if (failure == null) {
                    // Every rank ended; rank 0 either finished the chunk or stopped for a pause after the agreed step,
                    // its checkpoint committed (the next chunk restores it).
                    Promise<ChunkResult> zero = members.getFirst();
                    return zero.getFailure() == null ? zero.get() : null;
                }
                // Cancel every rank: each aborts its collective, so none waits on the one that failed; wait for all
                // of them (WAIT_CANCELLATION_COMPLETED) before the next attempt takes their slots.
                scope.cancel("a rank of chunk attempt " + attempt + " failed: " + Failures.message(failure));
                Workflow.await(() -> members.stream().allMatch(Promise::isCompleted));
                if (CancellationScope.current().isCancelRequested()) {
                    throw failure;
                }
                if (paused || stoppingForPause) {
                    // Stopped for a pause. A rank may report its aborted collective rather than the cancellation
                    // (its peer aborted first); either way the chunk resumes from the last committed checkpoint.
                    return null;
                }
                if (failure instanceof ActivityFailure a && isNonRetryable(a)) {
                    throw failure;
                }
                failures++;
                if (failures >= MAX_GROUP_ATTEMPTS) {
                    throw failure;
                }
                log.info("run {}: chunk attempt {} on {} ranks failed ({}); restarting from the last committed "
                        + "checkpoint", input.runId(), attempt, size, Failures.message(failure));
                Workflow.sleep(Duration.ofSeconds(Math.min(10, failures)));
            } finally {
                chunkScope = null;
                rankZeroScope = null;
                stoppingForPause = false;
                awaitingRendezvous = false;
            }
        }
    }

    /**
     * Before version 1 a pause cancelled every rank of a group chunk, which aborted the collective at once and lost the
     * steps since the last checkpoint; since, it cancels rank 0 alone, whose stop reaches every rank at the next step.
     */
    static final String GRACEFUL_GROUP_PAUSE = "graceful-group-pause";

    /** The sparse phase ends where the engine's adapter phase starts, for dense runs too ({@link #sparsePhaseEnd}). */
    static final String ONE_ADAPTER_RULE = "one-adapter-rule";

    /**
     * The failure of the first rank (in rank order) that failed, or null; rank 0 cancelled for a pause has not failed
     * the group (its stop reaches the other ranks, which end their chunk normally).
     */
    private RuntimeException groupFailure(List<Promise<ChunkResult>> members) {
        for (int rank = 0; rank < members.size(); rank++) {
            Promise<ChunkResult> member = members.get(rank);
            if (member.isCompleted() && member.getFailure() != null) {
                if (rank == 0 && stoppingForPause && member.getFailure() instanceof ActivityFailure a
                        && a.getCause() instanceof CanceledFailure) {
                    continue;
                }
                return member.getFailure();
            }
        }
        return null;
    }

    private static final int MAX_GROUP_ATTEMPTS = 20;

    /** A group's ranks: one attempt each (the workflow restarts the whole group), on any GPU worker. */
    private ModelActivities groupStub() {
        return Workflow.newActivityStub(ModelActivities.class, ActivityOptions.newBuilder()
                .setTaskQueue(TaskQueues.GPU)
                .setStartToCloseTimeout(Duration.ofMinutes(input.options().chunkMinutes() + 30L))
                .setHeartbeatTimeout(Duration.ofSeconds(15))
                .setCancellationType(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
                .setRetryOptions(RetryOptions.newBuilder().setMaximumAttempts(1).build())
                .build());
    }

    /**
     * Runs a model activity on the worker holding the model when one is known, within a cancellable scope; if that
     * worker does not pick it up in time (or fails it), on any GPU worker.
     */
    private <R> R onModelWorker(Functions.Func1<ModelActivities, R> call) {
        if (workerQueue != null) {
            try {
                return inChunkScope(modelStub(workerQueue), call);
            } catch (ActivityFailure e) {
                if (e.getCause() instanceof CanceledFailure || isNonRetryable(e)) {
                    throw e;
                }
                boolean notPickedUp = e.getCause() instanceof TimeoutFailure t
                        && t.getTimeoutType() == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START;
                log.info("run {}: worker queue {} {}; falling back to {}", input.runId(), workerQueue,
                        notPickedUp ? "did not pick the task up" : "failed (" + e.getCause().getMessage() + ")",
                        TaskQueues.GPU);
                workerQueue = null;
            }
        }
        return inChunkScope(modelStub(null), call);
    }

    private <R> R inChunkScope(ModelActivities activities, Functions.Func1<ModelActivities, R> call) {
        @SuppressWarnings("unchecked")
        Promise<R>[] promise = new Promise[1];
        CancellationScope scope = Workflow.newCancellationScope(
                () -> promise[0] = Async.function(call::apply, activities));
        chunkScope = scope;
        try {
            scope.run();
            return promise[0].get();
        } finally {
            chunkScope = null;
        }
    }

    private ModelActivities modelStub(String queue) {
        ActivityOptions.Builder options = ActivityOptions.newBuilder()
                .setStartToCloseTimeout(Duration.ofMinutes(input.options().chunkMinutes() + 30L))
                .setHeartbeatTimeout(Duration.ofSeconds(15))
                .setCancellationType(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED);
        if (queue == null) {
            options.setTaskQueue(TaskQueues.GPU).setRetryOptions(RetryOptions.newBuilder()
                    .setInitialInterval(Duration.ofSeconds(1)).setMaximumInterval(Duration.ofSeconds(10))
                    .setMaximumAttempts(20).build());
        } else {
            // One attempt there: any failure falls back to the shared queue, where retries happen.
            options.setTaskQueue(queue).setScheduleToStartTimeout(Duration.ofSeconds(10))
                    .setRetryOptions(RetryOptions.newBuilder().setMaximumAttempts(1).build());
        }
        return Workflow.newActivityStub(ModelActivities.class, options.build());
    }

    private ModelRequest modelRequest() {
        StageResult adapter = results.get(Stage.ADAPTER_PHASE);
        return new ModelRequest(input.runId(), spec, datasetId(), adapter == null ? lastCheckpoint
                : adapter.checkpoint());
    }

    private String datasetId() {
        StageResult prepared = results.get(Stage.PREPARE_DATA);
        return prepared == null ? null : prepared.datasetId();
    }

    private void enterStage(Stage s) {
        stage = s;
        Workflow.upsertTypedSearchAttributes(SearchAttributes.STAGE.valueSet(s.wireName()));
        bookkeeping.markStage(input.runId(), s, status);
    }

    private void awaitIfPaused(Stage s) {
        if (!paused) {
            return;
        }
        setStatus("PAUSED");
        stage = s;
        bookkeeping.markStage(input.runId(), s, "PAUSED");
        pauseInEffect = true;
        Workflow.await(() -> !paused);
        pauseInEffect = false;
        setStatus("RUNNING");
        bookkeeping.markStage(input.runId(), s, "RUNNING");
    }

    private void setStatus(String newStatus) {
        status = newStatus;
        Workflow.upsertTypedSearchAttributes(SearchAttributes.STATUS.valueSet(newStatus));
    }

    /**
     * Where the sparse phase ends: {@link RunSpecs#adapterPhaseStart}, the step where the engine attaches the adapters.
     * Before {@value #ONE_ADAPTER_RULE} version 1 a dense run's sparse phase ended at floor(start · steps) too, its
     * last steps trained as an adapter phase without adapters; histories from then replay that way.
     */
    private int sparsePhaseEnd() {
        if (Workflow.getVersion(ONE_ADAPTER_RULE, Workflow.DEFAULT_VERSION, 1) == Workflow.DEFAULT_VERSION) {
            return Math.min(RunSpecs.adapterStartStep(spec), totalSteps());
        }
        return RunSpecs.adapterPhaseStart(spec);
    }

    private int totalSteps() {
        return spec.training().steps();
    }

    @Override
    public RunProgress progress() {
        return new RunProgress(input == null ? null : input.runId(), stage == null ? null : stage.wireName(), status,
                stepsDone, spec == null || spec.training() == null || spec.training().steps() == null ? 0
                        : spec.training().steps(), lastCheckpoint, workerQueue, paused);
    }

    @Override
    public RunProgress pause() {
        paused = true;
        if (rankZeroScope != null) {
            // A group chunk with every rank started: rank 0 alone is cancelled; it asks every rank to stop after the
            // same step and commits the checkpoint there, the others end their chunk normally.
            stoppingForPause = true;
            rankZeroScope.cancel("pause requested");
        } else if (chunkScope != null) {
            chunkScope.cancel("pause requested");
        }
        Workflow.await(() -> pauseInEffect || finished || !paused);
        return progress();
    }

    @Override
    public void validatePause() {
        if (finished) {
            throw new IllegalStateException("the run has finished (" + status + "); there is nothing to pause");
        }
        if (paused) {
            throw new IllegalStateException("the run is already paused; resume it first");
        }
        if (stage == Stage.FINALIZE) {
            throw new IllegalStateException("the run is finalizing; it cannot be paused any more");
        }
    }

    @Override
    public RunProgress resume() {
        paused = false;
        return progress();
    }

    @Override
    public void validateResume() {
        if (!paused) {
            throw new IllegalStateException("the run is not paused (" + status + ")");
        }
    }

    @Override
    public void collectiveReady(CollectiveRendezvous rendezvous) {
        collectiveId = rendezvous.collectiveId();
    }

    @Override
    public void validateCollectiveReady(CollectiveRendezvous rendezvous) {
        if (rendezvous == null || !CollectiveRendezvous.wellFormed(rendezvous.collectiveId())) {
            throw new IllegalArgumentException("collectiveId must be host:port:nonce or nccl:<base64> (got "
                    + (rendezvous == null ? null : rendezvous.collectiveId()) + ")");
        }
        if (!awaitingRendezvous || rendezvous.group() != group) {
            throw new IllegalStateException("no rendezvous is awaited for chunk attempt " + rendezvous.group()
                    + (awaitingRendezvous ? " (the current attempt is " + group + ")" : ""));
        }
        if (collectiveId != null) {
            throw new IllegalStateException("chunk attempt " + group + " has its collective already");
        }
    }

    @Override
    public RunProgress setRanks(int newRanks) {
        ranks = newRanks;
        return progress();
    }

    @Override
    public void validateSetRanks(int newRanks) {
        if (finished) {
            throw new IllegalStateException("the run has finished (" + status + ")");
        }
        Integer gradAccum = spec == null || spec.training() == null ? null : spec.training().gradAccum();
        String error = RunOptions.ranksError(newRanks, gradAccum == null ? 1 : gradAccum);
        if (error != null) {
            throw new IllegalArgumentException(error);
        }
    }

    private static boolean isNonRetryable(ActivityFailure e) {
        return e.getCause() instanceof ApplicationFailure app && app.isNonRetryable();
    }

    private static String modelName(RunSpec spec) {
        if (spec.model() != null && spec.model().preset() != null) {
            return spec.model().preset();
        }
        return "tiny";
    }
}
