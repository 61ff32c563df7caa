package io.slope.workflows.run;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.pipeline.CheckpointRef;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import java.util.Map;
import java.util.Objects;

/**
 * The input of {@link SlopeRunWorkflow}. {@code fromStage} (null: the first) and {@code earlierResults} make a retry
 * from a stage: the stages before it are not run, their results come from here (the API reads them from Postgres).
 * {@code carry} is what a continue-as-new hands on; null for a new run. No secrets: inputs are visible in the UI.
 * {@code spec} is the JSON shape, which the workflow resolves itself: a spec that no longer validates fails the run
 * with its errors, and a resolved one is sent as {@link ResolvedSpec#toRunSpec()}.
 */
public record RunInput(String runId, RunSpec spec, RunOptions options, Stage fromStage,
        Map<Stage, StageResult> earlierResults, Carry carry) {
    public RunInput {
        Objects.requireNonNull(runId, "runId");
        Objects.requireNonNull(spec, "spec");
        options = options == null ? RunOptions.DEFAULT : options;
        earlierResults = earlierResults == null ? Map.of() : Map.copyOf(earlierResults);
    }

    public static RunInput start(String runId, RunSpec spec, RunOptions options) {
        return new RunInput(runId, spec, options, null, Map.of(), null);
    }

    public static RunInput start(String runId, ResolvedSpec spec, RunOptions options) {
        return start(runId, spec.toRunSpec(), options);
    }

    /** Where a continued workflow run resumes: the stage it was in and the training state it knew. */
    public record Carry(Stage stage, int stepsDone, CheckpointRef lastCheckpoint, String workerQueue,
            boolean paused) {}
}
