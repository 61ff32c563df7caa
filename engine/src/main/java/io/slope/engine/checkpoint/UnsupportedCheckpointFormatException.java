package io.slope.engine.checkpoint;

/**
 * A checkpoint written in a format version this code does not know, e.g. by a newer release. Refused rather than
 * skipped: silently falling back to an older checkpoint would throw away the newer one's progress.
 */
public final class UnsupportedCheckpointFormatException extends RuntimeException {
    public UnsupportedCheckpointFormatException(long step, String location, int formatVersion) {
        super("checkpoint step " + step + " at " + location + " has formatVersion " + formatVersion
                + ", but this version of slope reads only formatVersion " + CheckpointManifest.FORMAT_VERSION
                + "; use a slope release that writes formatVersion " + formatVersion);
    }
}
