package io.slope.spec.pipeline;

import java.util.Objects;

/**
 * A committed checkpoint, by reference: its step, the object-store prefix holding its shards, manifest and COMMIT, and
 * the manifest's SHA-256 (what COMMIT records). What travels through Temporal instead of tensors.
 */
public record CheckpointRef(long step, String prefix, String manifestSha256) {
    public CheckpointRef {
        Objects.requireNonNull(prefix, "prefix");
        Objects.requireNonNull(manifestSha256, "manifestSha256");
    }
}
