package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.bind.annotation.Bindable;
import java.time.Duration;

/**
 * The object store ({@code SLOPE_S3_*}, the same variables the workers read). {@code publicEndpoint} is the address
 * users' machines reach it at, which artifact URLs are signed for (compose: the API talks to {@code minio:9000}, a
 * laptop downloads from {@code localhost:9000}); the internal endpoint when unset.
 */
@ConfigurationProperties("slope.s3")
public record StorageSettings(
        String endpoint,
        @Nullable String publicEndpoint,
        String accessKey,
        String secretKey,
        @Bindable(defaultValue = "slope") String bucket,
        @Bindable(defaultValue = "us-east-1") String region,
        @Bindable(defaultValue = "1h") Duration presignExpiry) {}
