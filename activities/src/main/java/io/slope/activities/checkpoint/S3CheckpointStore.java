package io.slope.activities.checkpoint;

import io.slope.storage.ObjectStore;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CheckpointInfo;
import io.slope.engine.checkpoint.CheckpointManifest;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.CorruptCheckpointException;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Checkpoints in an object store under {@code runs/<runId>/checkpoints/<step, 10 digits>/}, in exactly the layout and
 * format of {@link LocalCheckpointStore} (which builds and verifies them in a local staging folder): tensor shards,
 * {@code manifest.json}, and {@code COMMIT} holding the manifest's SHA-256, uploaded last. A prefix without COMMIT is
 * not a checkpoint: it is never listed or loaded, and the next write of that step overwrites it. Loading downloads the
 * objects and verifies every checksum; a mismatch is a {@link CorruptCheckpointException}, so {@link #loadLatest}
 * falls back to the previous committed checkpoint.
 */
public final class S3CheckpointStore implements CheckpointStore {
    private final ObjectStore objects;
    private final String root;
    private final Path scratch;

    /** What a write committed: where, and its manifest (shard names, sizes and checksums). */
    public record Committed(CheckpointInfo info, String prefix, CheckpointManifest manifest) {}

    /**
     * @param runId the run whose checkpoints these are
     * @param scratch a local folder for staging uploads and downloads (emptied after each operation)
     */
    public S3CheckpointStore(ObjectStore objects, String runId, Path scratch) {
        this.objects = objects;
        this.root = "runs/" + runId + "/checkpoints/";
        this.scratch = scratch;
    }

    /** The object prefix of the checkpoint of {@code step}, ending in '/'. */
    public String prefix(long step) {
        return root + String.format("%010d", step) + "/";
    }

    /** {@code s3://bucket/prefix}, for messages. */
    public String location(long step) {
        return "s3://" + objects.bucket() + "/" + prefix(step);
    }

    public String root() {
        return root;
    }

    @Override
    public CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException {
        return commit(checkpoint, writerAttempt).info();
    }

    /** Writes and commits: shards, then manifest.json, then COMMIT. */
    public Committed commit(Checkpoint checkpoint, String writerAttempt) throws IOException {
        long step = checkpoint.step();
        String prefix = prefix(step);
        if (objects.exists(prefix + LocalCheckpointStore.COMMIT)) {
            throw new IllegalStateException("checkpoint step " + step + " at " + location(step)
                    + " is already committed; delete it before writing it again");
        }
        Path staging = Files.createDirectories(scratch).resolve("upload-" + step + "-" + System.nanoTime());
        try {
            LocalCheckpointStore local = new LocalCheckpointStore(staging);
            CheckpointInfo staged = local.write(checkpoint, writerAttempt);
            Path dir = local.checkpointDirectory(step);
            byte[] manifestJson = Files.readAllBytes(dir.resolve(LocalCheckpointStore.MANIFEST));
            CheckpointManifest manifest = CheckpointManifest.parse(manifestJson, step, dir.toString());
            for (CheckpointManifest.Shard shard : manifest.shards()) {
                objects.putFile(prefix + shard.file(), dir.resolve(shard.file()));
            }
            objects.putBytes(prefix + LocalCheckpointStore.MANIFEST, manifestJson);
            objects.putBytes(prefix + LocalCheckpointStore.COMMIT,
                    Files.readAllBytes(dir.resolve(LocalCheckpointStore.COMMIT)));
            return new Committed(new CheckpointInfo(step, location(step), staged.manifestSha256()), prefix, manifest);
        } finally {
            DurableFiles.deleteRecursively(staging);
        }
    }

    @Override
    public List<Long> committedSteps() throws IOException {
        List<Long> steps = new ArrayList<>();
        for (String key : objects.list(root)) {
            String rest = key.substring(root.length());
            int slash = rest.indexOf('/');
            if (slash == 10 && rest.substring(slash + 1).equals(LocalCheckpointStore.COMMIT)
                    && rest.substring(0, slash).chars().allMatch(Character::isDigit)) {
                steps.add(Long.parseLong(rest.substring(0, slash)));
            }
        }
        steps.sort(null);
        return steps;
    }

    @Override
    public LoadedCheckpoint load(long step) throws IOException {
        String prefix = prefix(step);
        String location = location(step);
        Optional<byte[]> commit = objects.getBytes(prefix + LocalCheckpointStore.COMMIT);
        if (commit.isEmpty()) {
            throw new NoSuchFileException(location, null, "no committed checkpoint of step " + step);
        }
        Path staging = Files.createDirectories(scratch).resolve("download-" + step + "-" + System.nanoTime());
        try {
            LocalCheckpointStore local = new LocalCheckpointStore(staging);
            Path dir = Files.createDirectories(local.checkpointDirectory(step));
            Optional<byte[]> manifestJson = objects.getBytes(prefix + LocalCheckpointStore.MANIFEST);
            if (manifestJson.isEmpty()) {
                throw new CorruptCheckpointException(step, location, "manifest.json is missing");
            }
            CheckpointManifest manifest = CheckpointManifest.parse(manifestJson.get(), step, location);
            Files.write(dir.resolve(LocalCheckpointStore.MANIFEST), manifestJson.get());
            for (CheckpointManifest.Shard shard : manifest.shards()) {
                if (shard.file().contains("/") || shard.file().startsWith(".")) {
                    throw new CorruptCheckpointException(step, location, "manifest.json names an invalid shard file "
                            + shard.file());
                }
                objects.download(prefix + shard.file(), dir.resolve(shard.file())); // a missing one fails below
            }
            Files.write(dir.resolve(LocalCheckpointStore.COMMIT), commit.get());
            try {
                return local.load(step);
            } catch (CorruptCheckpointException e) {
                throw new CorruptCheckpointException(step, location, e.getMessage()
                        .replace("checkpoint step " + step + " at " + dir + " is corrupt: ", ""));
            }
        } finally {
            DurableFiles.deleteRecursively(staging);
        }
    }

    /** Un-commits first (COMMIT is deleted before anything else), so a crash midway never leaves it listed. */
    @Override
    public void delete(long step) throws IOException {
        String prefix = prefix(step);
        objects.delete(prefix + LocalCheckpointStore.COMMIT);
        for (String key : objects.list(prefix)) {
            objects.delete(key);
        }
    }

    /** Writes the LATEST mirror: read only when there is no database (the arbiter is Postgres). */
    public void writeLatestMirror(Committed committed) throws IOException {
        objects.putBytes(root + "LATEST", ("{\"step\":" + committed.info().step() + ",\"prefix\":\""
                + committed.prefix() + "\",\"manifestSha256\":\"" + committed.info().manifestSha256() + "\"}\n")
                .getBytes(StandardCharsets.UTF_8));
    }
}
