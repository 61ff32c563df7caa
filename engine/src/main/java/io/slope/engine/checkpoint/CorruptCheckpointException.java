package io.slope.engine.checkpoint;

/** A committed checkpoint whose content does not verify (checksum, missing file, unreadable manifest or shard). */
public final class CorruptCheckpointException extends RuntimeException {
    private final long step;

    public CorruptCheckpointException(long step, String location, String problem) {
        super("checkpoint step " + step + " at " + location + " is corrupt: " + problem);
        this.step = step;
    }

    /** For a failure that concerns several checkpoints at once. */
    public CorruptCheckpointException(String message) {
        super(message);
        this.step = -1;
    }

    /** The checkpoint's step, or -1 when the failure concerns several. */
    public long step() {
        return step;
    }
}
