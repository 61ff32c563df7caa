package io.slope.gpuworker;

import io.slope.activities.checkpoint.AsyncCheckpointStore;
import io.slope.activities.checkpoint.CatalogedCheckpointStore;
import io.slope.engine.data.Dataset;
import io.slope.engine.run.TrainingSession;
import io.slope.spec.pipeline.CheckpointRef;
import java.io.IOException;

/** A run's model in memory, with what it needs to go on: its dataset, checkpoint store, uploads and progress. */
final class ResidentModel implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(ResidentModel.class.getName());

    final String runId;
    final Dataset dataset;
    final CatalogedCheckpointStore store;
    final AsyncCheckpointStore uploads;
    final TrainingSession session;
    final ProgressRecorder progress;
    /** Computed once by the first of merge, eval and export; the others reuse it. */
    TrainingSession.FinalEvaluation finalEvaluation;

    ResidentModel(String runId, Dataset dataset, CatalogedCheckpointStore store, AsyncCheckpointStore uploads,
            TrainingSession session, ProgressRecorder progress) {
        this.runId = runId;
        this.dataset = dataset;
        this.store = store;
        this.uploads = uploads;
        this.session = session;
        this.progress = progress;
    }

    Heartbeater.Details details() {
        return new Heartbeater.Details(session.stepsDone(), checkpointRef());
    }

    /** The newest checkpoint this model committed, or null. */
    CheckpointRef checkpointRef() {
        var last = store.lastCommitted();
        return last == null ? null : new CheckpointRef(last.step(), last.prefix(), last.manifestSha256());
    }

    @Override
    public void close() {
        try {
            uploads.close();
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "run " + runId + ": last checkpoint upload failed: "
                    + e.getMessage());
        } finally {
            session.close();
            dataset.close();
        }
    }
}
