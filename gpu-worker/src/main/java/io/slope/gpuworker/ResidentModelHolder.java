package io.slope.gpuworker;

import io.slope.activities.checkpoint.AsyncCheckpointStore;
import io.slope.activities.checkpoint.CatalogedCheckpointStore;
import io.slope.activities.checkpoint.S3CheckpointStore;
import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunRow;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.InvalidTokenShardException;
import io.slope.engine.parallel.Collective;
import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.ResolvedSpec;
import io.slope.storage.ObjectStore;
import io.slope.workflows.run.ModelRequest;
import io.temporal.activity.ActivityExecutionContext;
import io.temporal.failure.ApplicationFailure;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.UUID;

/**
 * Holds at most one run's model between activities, so that the next chunk of that run (sent to this worker's own
 * queue) goes on from memory; any other run, or a resident model behind the run's latest checkpoint, opens a session
 * that restores the newest committed checkpoint from S3. Used only inside the {@link WorkerSlot}.
 */
final class ResidentModelHolder {
    private static final System.Logger LOG = System.getLogger(ResidentModelHolder.class.getName());

    private final ObjectStore objects;
    private final DatasetStore datasets;
    private final RunCatalogue catalogue;
    private final RunCatalogue progressCatalogue;
    private final Path cacheDir;
    private final Path scratchDir;
    private final String workerQueue;
    private ResidentModel resident;

    ResidentModelHolder(ObjectStore objects, DatasetStore datasets, RunCatalogue catalogue,
            RunCatalogue progressCatalogue, Path cacheDir, Path scratchDir, String workerQueue) {
        this.objects = objects;
        this.datasets = datasets;
        this.catalogue = catalogue;
        this.progressCatalogue = progressCatalogue;
        this.cacheDir = cacheDir;
        this.scratchDir = scratchDir;
        this.workerQueue = workerQueue;
    }

    /** The run's resident model if it is at the run's latest checkpoint, else a newly opened one, now resident. */
    ResidentModel residentFor(String runId, ResolvedSpec spec, String datasetId, ActivityExecutionContext context)
            throws IOException {
        if (resident != null && resident.runId.equals(runId)) {
            long latest;
            try {
                latest = catalogue.run(UUID.fromString(runId)).map(RunRow::latestStep).orElse(-1L);
            } catch (SQLException e) {
                latest = -1; // cannot tell: restoring from S3 is always correct
            }
            if (latest == resident.session.stepsDone()) {
                return resident;
            }
            LOG.log(System.Logger.Level.INFO, "run " + runId + ": resident model is at step "
                    + resident.session.stepsDone() + " but the latest checkpoint is " + latest + "; restoring");
        }
        drop();
        resident = open(runId, spec, datasetId, context, Collective.single());
        return resident;
    }

    /**
     * The run's resident model, trained to the end, with its final evaluation (computed once, heartbeating meanwhile);
     * a run not trained to the end fails non-retryably.
     */
    ResidentModel finished(ModelRequest request, ActivityExecutionContext context) throws IOException {
        ResidentModel r = residentFor(request.runId(), request.spec(), request.datasetId(), context);
        if (r.session.stepsDone() < r.session.totalSteps()) {
            throw ApplicationFailure.newNonRetryableFailure("run " + request.runId() + " has trained "
                    + r.session.stepsDone() + " of " + r.session.totalSteps() + " steps; retry from stage "
                    + "adapterPhase", "NotTrained");
        }
        if (r.finalEvaluation == null) {
            try (Heartbeater heartbeat = new Heartbeater(context, r::details)) {
                r.finalEvaluation = r.session.finish();
            }
        }
        return r;
    }

    /**
     * Opens a session of the run from its newest committed checkpoint, as one rank of {@code collective}: rank 0
     * records progress and writes checkpoints; the other ranks only take part. The caller owns it (it is not held).
     */
    ResidentModel open(String runId, ResolvedSpec spec, String datasetId, ActivityExecutionContext context,
            Collective collective) throws IOException {
        if (datasetId == null) {
            throw ApplicationFailure.newNonRetryableFailure("run " + runId + " has no prepared dataset; retry from "
                    + "stage prepareData", "MissingDataset");
        }
        UUID id = UUID.fromString(runId);
        Dataset dataset;
        try {
            dataset = datasets.fetch(datasetId, cacheDir);
        } catch (InvalidTokenShardException e) {
            throw ApplicationFailure.newNonRetryableFailure("dataset " + datasetId + ": " + e.getMessage(),
                    "InvalidDataset");
        }
        CatalogedCheckpointStore store = new CatalogedCheckpointStore(new S3CheckpointStore(objects, runId,
                scratchDir.resolve(runId)), catalogue, id);
        ProgressRecorder progress = new ProgressRecorder(progressCatalogue, id);
        String writer = workerQueue + "/" + context.getInfo().getActivityId() + "/attempt-"
                + context.getInfo().getAttempt();
        AsyncCheckpointStore uploads = new AsyncCheckpointStore(store);
        TrainingSession session;
        try {
            TrainingSession.Listener listener = collective.rank() == 0 ? listener(store, progress) : quiet(runId);
            session = TrainingSession.open(spec, dataset, uploads, writer, listener, collective);
            uploads.flush(); // a step-0 checkpoint is committed before anything relies on it
        } catch (InvalidSpecException | IllegalArgumentException e) {
            uploads.close();
            dataset.close();
            throw ApplicationFailure.newNonRetryableFailure(e.getMessage(), "InvalidSpec");
        } catch (IOException | RuntimeException e) {
            uploads.close();
            dataset.close();
            throw e;
        }
        if (collective.rank() == 0) {
            String where = collective.worldSize() > 1 ? "rank 0 of " + collective.worldSize() + " on "
                    : "model resident on ";
            progress.info(where + workerQueue + " after step " + session.stepsDone());
            progress.flush();
        }
        return new ResidentModel(runId, dataset, store, uploads, session, progress);
    }

    /** Frees the resident model, if any (a failed chunk, another run, or a group rank needs the memory). */
    void drop() {
        if (resident != null) {
            try {
                resident.close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "closing the resident model: " + e.getMessage());
            }
            resident = null;
        }
    }

    /** Rank 0's listener: progress, evaluations and the validation loss that retention ranks checkpoints by. */
    private static TrainingSession.Listener listener(CatalogedCheckpointStore store, ProgressRecorder progress) {
        return new TrainingSession.Listener() {
            @Override
            public void onInfo(String line) {
                progress.info(line);
            }

            @Override
            public void onStep(Trainer.StepStats stats, int totalSteps) {
                progress.step(stats);
            }

            @Override
            public void onEval(int step, String form, double valLoss) {
                store.noteValidationLoss(step, valLoss);
                progress.eval(step, form.equals("sparse") ? "val_loss_sparse" : "val_loss", valLoss);
            }
        };
    }

    /** A rank other than 0 reports nothing to the catalogue (rank 0 does, once for the group); it logs. */
    private static TrainingSession.Listener quiet(String runId) {
        return new TrainingSession.Listener() {
            @Override
            public void onInfo(String line) {
                LOG.log(System.Logger.Level.INFO, "run " + runId + ": " + line);
            }
        };
    }
}
