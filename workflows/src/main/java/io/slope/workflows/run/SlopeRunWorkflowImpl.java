package io.slope.workflows.run;

import io.slope.spec.InvalidSpecException;
import io.slope.spec.Preset;
import io.slope.spec.ResolvedSpec;
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
import java.util.EnumMap;
import java.util.Map;
import java.util.function.Function;
import org.slf4j.Logger;

/**
 * The stages of a run in order, each one's result kept (and stored in Postgres) so a retry can start from any stage.
 * Training runs as chunks, each ending on a committed checkpoint: the first chunk goes to any GPU worker; later ones
 * to the worker that holds the model (its own queue, short ScheduleToStart), falling back to any worker, which then
 * restores the newest committed checkpoint. Pause cancels the running chunk, which checkpoints and stops; cancel does
 * the same and ends the run CANCELLED. Deterministic code only: everything else happens in activities.
 *
 * <p>With {@code ranks} > 1 each chunk is trained by a group of ranks, by the protocol in {@link DataParallelChunk}.
 * One rank takes exactly the path it always did.
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
    /** The input's spec once resolved; null before, and for a spec that does not validate. */
    private ResolvedSpec spec;
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
    /** Chunks on more than one rank; it reads the rank count and the pause at each attempt. */
    private final DataParallelChunk dataParallel = new DataParallelChunk(() -> ranks, () -> paused, this::runChunk);
    private final Map<Stage, StageResult> results = new EnumMap<>(Stage.class);

    @Override
    public RunOutcome run(RunInput in) {
        this.input = in;
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
                SearchAttributes.MODEL.valueSet(modelName(in.spec())), SearchAttributes.STATUS.valueSet(status),
                SearchAttributes.STAGE.valueSet(start.wireName()));
        try {
            try {
                spec = RunSpecs.resolve(in.spec());
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
                    retainAtEnd();
                    setStatus("CANCELLED");
                    bookkeeping.finishRun(in.runId(), "CANCELLED", null);
                }).run();
                throw e;
            }
            String message = Failures.message(e);
            retainAtEnd();
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
            ChunkResult chunk = ranks > 1 ? dataParallel.train(request) : runChunk(request);
            if (chunk != null) {
                stepsDone = chunk.stepsDone();
                lastCheckpoint = chunk.checkpoint();
                workerQueue = chunk.workerQueue();
                chunksThisRun++;
            }
            // A long phase keeps only what retention keeps as it goes, not every checkpoint until its end.
            if (stepsDone < end && retentionBeyondPhaseEnds()) {
                bookkeeping.collectGarbage(input.runId(), input.options().keepLastCheckpoints());
            }
            if (stepsDone < end && continueAsNewDue()) {
                Workflow.await(Workflow::isEveryHandlerFinished);
                RunOptions options = ranks == input.options().ranks() ? input.options()
                        : input.options().withRanks(ranks);
                Workflow.continueAsNew(new RunInput(input.runId(), spec.toRunSpec(), options, null, Map.copyOf(results),
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

    /**
     * Before {@value #RETENTION_BEYOND_PHASE_ENDS} version 1 retention ran only where a phase ended, so a cancelled or
     * failed run, or a long phase, kept every checkpoint; histories from then replay without the new activities.
     */
    static final String RETENTION_BEYOND_PHASE_ENDS = "retention-beyond-phase-ends";

    private static boolean retentionBeyondPhaseEnds() {
        return Workflow.getVersion(RETENTION_BEYOND_PHASE_ENDS, Workflow.DEFAULT_VERSION, 1) >= 1;
    }

    /** A cancelled or failed run that trained keeps what retention keeps (the latest and best among them), no more. */
    private void retainAtEnd() {
        if (stage.ordinal() >= Stage.SPARSE_PHASE.ordinal() && retentionBeyondPhaseEnds()) {
            bookkeeping.collectGarbage(input.runId(), input.options().keepLastCheckpoints());
        }
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

    /** The sparse phase ends where the engine's adapter phase starts, for dense runs too ({@link #sparsePhaseEnd}). */
    static final String ONE_ADAPTER_RULE = "one-adapter-rule";

    /**
     * Runs a model activity on the worker holding the model when one is known, within a cancellable scope; if that
     * worker does not pick it up in time (or fails it), on any GPU worker.
     */
    private <R> R onModelWorker(Functions.Func1<ModelActivities, R> call) {
        if (workerQueue != null) {
            try {
                return inChunkScope(modelStub(workerQueue), call);
            } catch (ActivityFailure e) {
                if (e.getCause() instanceof CanceledFailure || Failures.isNonRetryable(e)) {
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
                stepsDone, spec != null ? spec.training().steps() : inputTraining(RunSpec.Training::steps, 0),
                lastCheckpoint, workerQueue, paused);
    }

    @Override
    public RunProgress pause() {
        paused = true;
        if (!dataParallel.cancelForPause() && chunkScope != null) {
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
        dataParallel.collectiveReady(rendezvous);
    }

    @Override
    public void validateCollectiveReady(CollectiveRendezvous rendezvous) {
        dataParallel.validateCollectiveReady(rendezvous);
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
        int gradAccum = spec != null ? spec.training().gradAccum() : inputTraining(RunSpec.Training::gradAccum, 1);
        String error = RunOptions.ranksError(newRanks, gradAccum);
        if (error != null) {
            throw new IllegalArgumentException(error);
        }
    }

    /** A training field as the input gives it, for before the spec is resolved (or when it does not resolve). */
    private int inputTraining(Function<RunSpec.Training, Integer> field, int absent) {
        RunSpec.Training training = input == null ? null : input.spec().training();
        Integer value = training == null ? null : field.apply(training);
        return value == null ? absent : value;
    }

    private static String modelName(RunSpec spec) {
        if (spec.model() != null && spec.model().preset() != null) {
            return spec.model().preset();
        }
        return Preset.TINY.wireName();
    }
}
