package io.slope.spec.pipeline;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonValue;
import java.util.Arrays;
import java.util.List;

/** The stages of a run, in order (docs/architecture.md §2). The API, Postgres and Temporal show the wire name. */
public enum Stage {
    PREPARE_DATA("prepareData"),
    SPARSE_PHASE("sparsePhase"),
    ADAPTER_PHASE("adapterPhase"),
    MERGE("merge"),
    EVAL("eval"),
    EXPORT("export"),
    FINALIZE("finalize");

    private final String wireName;

    Stage(String wireName) {
        this.wireName = wireName;
    }

    @JsonValue
    public String wireName() {
        return wireName;
    }

    public static List<String> wireNames() {
        return Arrays.stream(values()).map(Stage::wireName).toList();
    }

    /** @throws IllegalArgumentException naming the allowed stages */
    @JsonCreator
    public static Stage fromWire(String name) {
        for (Stage stage : values()) {
            if (stage.wireName.equals(name)) {
                return stage;
            }
        }
        throw new IllegalArgumentException("fromStage: unknown stage '" + name + "'; allowed: " + wireNames());
    }
}
