package io.slope.gpuworker;

import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
import io.slope.engine.parallel.Collective;
import io.slope.engine.run.TrainingSession;
import io.slope.spec.pipeline.StageResult;
import io.slope.storage.ObjectStore;
import io.slope.workflows.run.ChunkRequest;
import io.slope.workflows.run.ChunkResult;
import io.slope.workflows.run.ModelActivities;
import io.slope.workflows.run.ModelRequest;
import io.slope.workflows.run.RankedChunk;
import io.temporal.activity.Activity;
import io.temporal.activity.ActivityExecutionContext;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The model stages on one worker, one at a time ({@link WorkerSlot}). A chunk trains the run's resident model
 * ({@link ResidentModelHolder}); a data-parallel rank trains as one {@link GroupMember} of its group; merge, eval and
 * export finish the resident model and hand it to {@link FinalStages}.
 */
public final class ModelActivitiesImpl implements ModelActivities {
    private static final System.Logger LOG = System.getLogger(ModelActivitiesImpl.class.getName());

    private final WorkerSlot slot = new WorkerSlot();
    private final ResidentModelHolder models;
    private final FinalStages finalStages;
    private final String workerQueue;

    public ModelActivitiesImpl(ObjectStore objects, DatasetStore datasets, RunCatalogue catalogue,
            RunCatalogue progressCatalogue, Path cacheDir, Path scratchDir, String workerQueue) {
        this.models = new ResidentModelHolder(objects, datasets, catalogue, progressCatalogue, cacheDir, scratchDir,
                workerQueue);
        this.finalStages = new FinalStages(objects, catalogue, scratchDir);
        this.workerQueue = workerQueue;
    }

    /** Graceful shutdown: the running chunk stops at its next step with a checkpoint; waits for it to return. */
    public void stopAndWait(long timeoutMillis) throws InterruptedException {
        slot.stopAndWait(timeoutMillis);
    }

    @Override
    public ChunkResult trainChunk(ChunkRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return slot.run(context, request.runId(), () -> {
            ResidentModel r = models.residentFor(request.runId(), request.spec(), request.datasetId(), context);
            long deadline = System.nanoTime() + request.maxMinutes() * 60_000_000_000L;
            try (Heartbeater heartbeat = new Heartbeater(context, r::details)) {
                TrainingSession.ChunkResult chunk;
                try {
                    chunk = r.session.trainUntil(request.stopStep(),
                            () -> slot.stopping() || heartbeat.stopRequested() || System.nanoTime() > deadline);
                    r.uploads.flush(); // the chunk ends on a committed checkpoint
                } catch (RuntimeException | IOException e) {
                    models.drop();
                    throw e;
                }
                r.progress.flush();
                heartbeat.rethrowIfCancelled();
                LOG.log(System.Logger.Level.INFO, "run " + request.runId() + ": " + request.stage().wireName()
                        + " chunk ended after step " + chunk.stepsDone());
                return new ChunkResult(chunk.stepsDone(), r.checkpointRef(), slot.stopping() ? null : workerQueue);
            }
        });
    }

    @Override
    public ChunkResult trainChunkAsRank(RankedChunk request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        ChunkRequest chunk = request.chunk();
        return slot.run(context, chunk.runId(), () -> {
            models.drop(); // the group restores the committed checkpoint; this worker's memory goes to this rank
            GroupMember member = new GroupMember(request, context);
            try (Heartbeater heartbeat = new Heartbeater(context, member::details, member::stopped)) {
                try {
                    Collective collective = member.rendezvous();
                    ResidentModel r = models.open(chunk.runId(), chunk.spec(), chunk.datasetId(), context, collective);
                    member.hold(r);
                    long deadline = System.nanoTime() + chunk.maxMinutes() * 60_000_000_000L;
                    TrainingSession.ChunkResult result = r.session.trainUntil(chunk.stopStep(),
                            () -> slot.stopping() || heartbeat.stopRequested() || System.nanoTime() > deadline);
                    member.trained();
                    r.uploads.flush(); // the chunk ends on a committed checkpoint (rank 0 writes it)
                    r.progress.flush();
                    heartbeat.rethrowIfCancelled();
                    LOG.log(System.Logger.Level.INFO, "run " + chunk.runId() + ": rank " + request.rank() + " of "
                            + request.ranks() + " ended its " + chunk.stage().wireName() + " chunk after step "
                            + result.stepsDone());
                    return new ChunkResult(result.stepsDone(), request.rank() == 0 ? r.checkpointRef() : null, null);
                } catch (RuntimeException | IOException e) {
                    heartbeat.rethrowIfCancelled(); // the cancellation aborted the collective: report it as such
                    throw e;
                } finally {
                    member.close();
                }
            }
        });
    }

    @Override
    public StageResult merge(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return slot.run(context, request.runId(), () -> finalStages.merge(models.finished(request, context)));
    }

    @Override
    public StageResult evaluate(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return slot.run(context, request.runId(), () -> finalStages.evaluate(models.finished(request, context)));
    }

    @Override
    public StageResult export(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return slot.run(context, request.runId(), () -> finalStages.export(models.finished(request, context)));
    }
}
