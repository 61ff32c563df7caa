package io.slope.activities.checkpoint;

import io.slope.catalogue.RunCatalogue;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CheckpointInfo;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import java.io.IOException;
import java.sql.SQLException;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The service's checkpoint store: checkpoints in S3 ({@link S3CheckpointStore}), each one recorded in the catalogue
 * once committed, where one conditional UPDATE decides whether it becomes the run's latest; the S3 {@code LATEST}
 * mirror is written only after that UPDATE won. A checkpoint committed in S3 whose catalogue write failed is still a
 * committed checkpoint: restore lists S3, so nothing is lost, and the write is retried with the next checkpoint.
 */
public final class CatalogedCheckpointStore implements CheckpointStore {
    private final S3CheckpointStore s3;
    private final RunCatalogue catalogue;
    private final UUID runId;
    private final Map<Long, Double> valLosses = new ConcurrentHashMap<>();
    private volatile CheckpointInfoWithPrefix lastCommitted;

    /** The newest checkpoint this store committed (or restored), with its object prefix. */
    public record CheckpointInfoWithPrefix(long step, String prefix, String manifestSha256) {}

    public CatalogedCheckpointStore(S3CheckpointStore s3, RunCatalogue catalogue, UUID runId) {
        this.s3 = s3;
        this.catalogue = catalogue;
        this.runId = runId;
    }

    /** A validation loss measured at {@code step}, recorded with the checkpoint of that step (retention's "best"). */
    public void noteValidationLoss(long step, double valLoss) {
        valLosses.put(step, valLoss);
    }

    @Override
    public CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException {
        S3CheckpointStore.Committed committed = s3.commit(checkpoint, writerAttempt);
        long step = checkpoint.step();
        lastCommitted = new CheckpointInfoWithPrefix(step, committed.prefix(), committed.info().manifestSha256());
        boolean latest;
        try {
            latest = catalogue.recordCheckpoint(runId, step, committed.prefix(), writerAttempt,
                    committed.info().manifestSha256(), committed.manifest().shards().stream().map(shard ->
                    new RunCatalogue.CheckpointShard(shard.file(), shard.bytes(), shard.sha256())).toList(),
                    valLosses.remove(step));
        } catch (SQLException e) {
            throw new IOException("checkpoint step " + step + " is committed at " + committed.info().location()
                    + " but the catalogue could not record it: " + e.getMessage(), e);
        }
        if (latest) {
            s3.writeLatestMirror(committed);
        }
        return committed.info();
    }

    @Override
    public List<Long> committedSteps() throws IOException {
        return s3.committedSteps();
    }

    @Override
    public LoadedCheckpoint load(long step) throws IOException {
        LoadedCheckpoint loaded = s3.load(step);
        lastCommitted = new CheckpointInfoWithPrefix(step, s3.prefix(step), manifestSha(loaded));
        return loaded;
    }

    private static String manifestSha(LoadedCheckpoint loaded) {
        return io.slope.engine.checkpoint.DurableFiles.sha256Hex(loaded.manifest().toJson());
    }

    /** Deletes the objects (COMMIT first), then the catalogue row. */
    @Override
    public void delete(long step) throws IOException {
        s3.delete(step);
        try {
            catalogue.deleteCheckpointRow(runId, step);
        } catch (SQLException e) {
            throw new IOException("checkpoint step " + step + ": objects deleted, catalogue row not: "
                    + e.getMessage(), e);
        }
    }

    public CheckpointInfoWithPrefix lastCommitted() {
        return lastCommitted;
    }

    public S3CheckpointStore s3() {
        return s3;
    }
}
