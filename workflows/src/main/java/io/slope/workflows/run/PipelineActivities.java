package io.slope.workflows.run;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.temporal.activity.ActivityInterface;
import java.util.Map;

/** Activities on {@link TaskQueues#PIPELINE}: everything that does not touch the model. */
@ActivityInterface
public interface PipelineActivities {
    /** The corpus as content-addressed token shards in the object store (idempotent). */
    StageResult prepareData(String runId, ResolvedSpec spec);

    /** Postgres: the run is in {@code stage} with {@code status} (RUNNING, PAUSED). */
    void markStage(String runId, Stage stage, String status);

    void saveStageResult(String runId, StageResult result);

    /** Checkpoint retention for the run (objects first, rows second). */
    void collectGarbage(String runId, int keepLast);

    /** Verifies the exported files against their manifest and registers them as the run's artifacts. */
    StageResult finalizeRun(String runId, Map<Stage, StageResult> results);

    /** Postgres: SUCCEEDED, FAILED (with the error) or CANCELLED. */
    void finishRun(String runId, String status, String error);
}
