package io.slope.engine.checkpoint;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Durable checkpoints of one run. Every implementation follows one commit protocol: tensor shards and
 * {@code manifest.json} are written first, a {@code COMMIT} marker holding the manifest's SHA-256 last. A checkpoint
 * without {@code COMMIT} does not exist: it is never listed or loaded. Loading verifies every checksum.
 *
 * <p>One writer per run at a time (the workflow guarantees it); readers may run concurrently with the writer.
 */
public interface CheckpointStore {
    /**
     * Writes and commits a checkpoint. When this returns, the checkpoint is durable and listed.
     *
     * @param writerAttempt who wrote it (e.g. activity id and attempt), recorded in the manifest for forensics
     * @throws IllegalStateException when a checkpoint of that step is already committed (delete it first)
     */
    CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException;

    /** Steps of the committed checkpoints, ascending. */
    List<Long> committedSteps() throws IOException;

    /**
     * Loads and verifies one committed checkpoint.
     *
     * @throws CorruptCheckpointException when its content does not verify
     * @throws UnsupportedCheckpointFormatException when it was written in an unknown format version
     * @throws java.nio.file.NoSuchFileException when no checkpoint of that step is committed
     */
    LoadedCheckpoint load(long step) throws IOException;

    /** Deletes a checkpoint, un-committing it first so that a crash midway never leaves a half-deleted one listed. */
    void delete(long step) throws IOException;

    /**
     * The newest committed checkpoint that verifies. A corrupt one is skipped with a logged warning naming it and why,
     * and the previous one is tried; the skipped ones are reported in {@link LoadedCheckpoint#skipped()}.
     *
     * @return empty when there is no committed checkpoint at all
     * @throws CorruptCheckpointException when committed checkpoints exist but none verifies: starting over silently
     *     would discard the run's progress
     * @throws UnsupportedCheckpointFormatException when the newest checkpoint has an unknown format version; falling
     *     back past it would discard progress too
     */
    default Optional<LoadedCheckpoint> loadLatest() throws IOException {
        List<Long> steps = committedSteps();
        List<SkippedCheckpoint> skipped = new ArrayList<>();
        for (int i = steps.size() - 1; i >= 0; i--) {
            long step = steps.get(i);
            try {
                return Optional.of(load(step).withSkipped(skipped));
            } catch (CorruptCheckpointException e) {
                System.getLogger(CheckpointStore.class.getName()).log(System.Logger.Level.WARNING,
                        e.getMessage() + "; falling back to the previous committed checkpoint");
                skipped.add(new SkippedCheckpoint(step, e.getMessage()));
            }
        }
        if (!skipped.isEmpty()) {
            throw new CorruptCheckpointException("no committed checkpoint verifies: " + skipped.stream()
                    .map(SkippedCheckpoint::reason).toList());
        }
        return Optional.empty();
    }
}
