package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.bind.annotation.Bindable;
import io.micronaut.core.annotation.Nullable;
import java.time.Duration;

/**
 * Where the Temporal frontend is ({@code SLOPE_TEMPORAL_TARGET}), the namespace, the Temporal UI's address as a
 * person's browser reaches it (for links from the run page; none when unset), and how long the API waits for a running
 * workflow to accept a pause or resume before answering 503.
 */
@ConfigurationProperties("slope.temporal")
public record TemporalSettings(
        @Bindable(defaultValue = "127.0.0.1:7233") String target,
        @Bindable(defaultValue = "default") String namespace,
        @Nullable String uiUrl,
        @Bindable(defaultValue = "15s") Duration updateTimeout) {}
