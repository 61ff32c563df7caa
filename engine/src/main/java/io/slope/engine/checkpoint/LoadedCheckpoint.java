package io.slope.engine.checkpoint;

import java.util.List;

/**
 * A verified checkpoint with its manifest. {@code skipped} lists the newer committed checkpoints that failed
 * verification and were passed over to reach this one (empty when it is the newest).
 */
public record LoadedCheckpoint(Checkpoint checkpoint, CheckpointManifest manifest, List<SkippedCheckpoint> skipped) {
    public LoadedCheckpoint {
        skipped = List.copyOf(skipped);
    }

    LoadedCheckpoint withSkipped(List<SkippedCheckpoint> newerSkipped) {
        return new LoadedCheckpoint(checkpoint, manifest, newerSkipped);
    }
}
