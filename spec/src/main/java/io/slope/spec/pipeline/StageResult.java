package io.slope.spec.pipeline;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.Map;
import java.util.Objects;

/**
 * What a completed stage produced, as keys and numbers: the prepared dataset (prepareData), the checkpoint a phase
 * ended on (sparsePhase, adapterPhase), the merged model's folder (merge), evaluation results (eval), the exports'
 * prefix and file count (export). Stored in Postgres ({@code stage_results}) and passed to a retry-from-stage run as
 * workflow input, so that no stage ever has to be run again to learn what an earlier one made.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record StageResult(Stage stage, String datasetId, CheckpointRef checkpoint, String prefix,
        Map<String, Double> values) {
    public StageResult {
        Objects.requireNonNull(stage, "stage");
        values = values == null ? Map.of() : Map.copyOf(values);
    }

    public static StageResult dataset(String datasetId, Map<String, Double> values) {
        return new StageResult(Stage.PREPARE_DATA, datasetId, null, null, values);
    }

    public static StageResult phase(Stage stage, CheckpointRef checkpoint) {
        return new StageResult(stage, null, checkpoint, null, Map.of());
    }

    public static StageResult output(Stage stage, String prefix, Map<String, Double> values) {
        return new StageResult(stage, null, null, prefix, values);
    }
}
