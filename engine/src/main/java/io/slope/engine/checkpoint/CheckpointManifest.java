package io.slope.engine.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Objects;

/**
 * {@code manifest.json} of a checkpoint: format version, step, the writer attempt that produced it, one entry per
 * tensor shard with its SHA-256, and the caller's opaque state object. Shared by every {@link CheckpointStore}.
 */
public record CheckpointManifest(int formatVersion, long step, String writerAttempt, String createdAt,
        List<Shard> shards, ObjectNode state) {
    public static final int FORMAT_VERSION = 1;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(SerializationFeature.INDENT_OUTPUT);

    /** One safetensors file of the checkpoint: name, size, SHA-256 of the whole file and the tensors it holds. */
    public record Shard(String file, long bytes, String sha256, List<String> tensors) {
        public Shard {
            Objects.requireNonNull(file, "file");
            Objects.requireNonNull(sha256, "sha256");
            tensors = List.copyOf(Objects.requireNonNull(tensors, "tensors"));
        }
    }

    public CheckpointManifest {
        shards = List.copyOf(Objects.requireNonNull(shards, "shards"));
        Objects.requireNonNull(writerAttempt, "writerAttempt");
        Objects.requireNonNull(state, "state");
    }

    public byte[] toJson() {
        try {
            return JSON.writeValueAsBytes(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a manifest always serialises", e);
        }
    }

    /**
     * Parses a manifest. The format version is read first, on its own, so that a manifest of an unknown version is
     * reported as such even when the rest of it has changed shape.
     *
     * @throws UnsupportedCheckpointFormatException for a formatVersion other than {@link #FORMAT_VERSION}
     * @throws CorruptCheckpointException when it is not a valid manifest
     */
    public static CheckpointManifest parse(byte[] json, long expectedStep, String location) {
        ObjectNode tree;
        try {
            if (!(JSON.readTree(json) instanceof ObjectNode object)) {
                throw new CorruptCheckpointException(expectedStep, location, "manifest.json is not a JSON object");
            }
            tree = object;
        } catch (java.io.IOException e) {
            throw new CorruptCheckpointException(expectedStep, location, "manifest.json is not valid JSON: "
                    + e.getMessage());
        }
        if (!tree.path("formatVersion").canConvertToInt()) {
            throw new CorruptCheckpointException(expectedStep, location, "manifest.json has no formatVersion");
        }
        int version = tree.get("formatVersion").intValue();
        if (version != FORMAT_VERSION) {
            throw new UnsupportedCheckpointFormatException(expectedStep, location, version);
        }
        CheckpointManifest manifest;
        try {
            manifest = JSON.treeToValue(tree, CheckpointManifest.class);
        } catch (JsonProcessingException | IllegalArgumentException e) {
            throw new CorruptCheckpointException(expectedStep, location, "manifest.json: " + e.getMessage());
        }
        if (manifest.step != expectedStep) {
            throw new CorruptCheckpointException(expectedStep, location, "manifest.json says step " + manifest.step);
        }
        return manifest;
    }
}
