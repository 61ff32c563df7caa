package io.slope.storage;

import java.util.Map;
import java.util.Objects;

/**
 * Where the object store is and how to sign for it. Read from the worker's environment, never from a workflow input:
 * the Temporal UI shows inputs to its operators, so keys must not travel there.
 */
public record S3Config(String endpoint, String accessKey, String secretKey, String bucket, String region) {
    public S3Config {
        Objects.requireNonNull(endpoint, "endpoint");
        Objects.requireNonNull(accessKey, "accessKey");
        Objects.requireNonNull(secretKey, "secretKey");
        Objects.requireNonNull(bucket, "bucket");
        region = region == null || region.isBlank() ? "us-east-1" : region;
    }

    /** SLOPE_S3_ENDPOINT, SLOPE_S3_ACCESS_KEY, SLOPE_S3_SECRET_KEY, SLOPE_S3_BUCKET (default "slope"), SLOPE_S3_REGION. */
    public static S3Config fromEnvironment(Map<String, String> env) {
        return new S3Config(required(env, "SLOPE_S3_ENDPOINT"), required(env, "SLOPE_S3_ACCESS_KEY"),
                required(env, "SLOPE_S3_SECRET_KEY"), env.getOrDefault("SLOPE_S3_BUCKET", "slope"),
                env.get("SLOPE_S3_REGION"));
    }

    static String required(Map<String, String> env, String name) {
        String value = env.get(name);
        if (value == null || value.isBlank()) {
            throw new IllegalStateException(name + " is not set: the worker needs the S3 endpoint and its keys in "
                    + "its environment (SLOPE_S3_ENDPOINT, SLOPE_S3_ACCESS_KEY, SLOPE_S3_SECRET_KEY)");
        }
        return value;
    }

    @Override
    public String toString() {
        return "S3Config[endpoint=" + endpoint + ", bucket=" + bucket + ", region=" + region + "]";
    }
}
