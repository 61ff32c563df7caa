package io.slope.catalogue;

import java.util.Arrays;
import java.util.List;

/** A run's status, as Postgres stores it (the CHECK constraint of {@code runs.status}). */
public enum RunStatus {
    QUEUED, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED;

    public boolean finished() {
        return this == SUCCEEDED || this == FAILED || this == CANCELLED;
    }

    public static List<String> names() {
        return Arrays.stream(values()).map(Enum::name).toList();
    }
}
