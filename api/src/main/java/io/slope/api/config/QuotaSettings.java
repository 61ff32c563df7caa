package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.bind.annotation.Bindable;

/**
 * What one user may hold at a time, so that one user cannot take the service from the others: unfinished runs
 * (queued, running or paused: a paused run may resume at any time) {@code SLOPE_QUOTA_MAX_ACTIVE_RUNS}, the ranks
 * (GPU workers) those runs train on together {@code SLOPE_QUOTA_MAX_ACTIVE_RANKS}, and the bytes of their corpora,
 * checkpoints and exports {@code SLOPE_QUOTA_MAX_STORAGE_BYTES}.
 */
@ConfigurationProperties("slope.quota")
public record QuotaSettings(@Bindable(defaultValue = "10") int maxActiveRuns,
        @Bindable(defaultValue = "16") int maxActiveRanks,
        @Bindable(defaultValue = "107374182400") long maxStorageBytes) {
    public QuotaSettings {
        if (maxActiveRuns < 1 || maxActiveRanks < 1 || maxStorageBytes < 1) {
            throw new IllegalArgumentException("slope.quota.* (SLOPE_QUOTA_MAX_ACTIVE_RUNS, "
                    + "SLOPE_QUOTA_MAX_ACTIVE_RANKS, SLOPE_QUOTA_MAX_STORAGE_BYTES) must be at least 1, got "
                    + maxActiveRuns + ", " + maxActiveRanks + ", " + maxStorageBytes);
        }
    }
}
