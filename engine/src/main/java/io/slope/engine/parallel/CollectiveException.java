package io.slope.engine.parallel;

/** A collective operation failed: a peer died, timed out, or the group was aborted. The run restarts from a checkpoint. */
public final class CollectiveException extends RuntimeException {
    public CollectiveException(String message) {
        super(message);
    }

    public CollectiveException(String message, Throwable cause) {
        super(message, cause);
    }
}
