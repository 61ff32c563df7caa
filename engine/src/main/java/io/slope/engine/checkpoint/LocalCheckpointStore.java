package io.slope.engine.checkpoint;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Checkpoints on a local file system, laid out as {@code <runRoot>/checkpoints/<step, 10 digits>/}: shards
 * {@code tensors-NNNNN.safetensors}, {@code manifest.json}, {@code COMMIT}.
 *
 * <p>Write protocol: everything is written into a staging directory beside the final one (same file system, so the
 * rename is atomic), each file and the directory are fsynced, the staging directory is renamed to its final name and
 * the parent fsynced, and only then is {@code COMMIT} written (to a temporary name, fsynced, renamed, directory
 * fsynced). A crash at any point leaves either a committed checkpoint or debris that is never loaded and is removed by
 * the next write.
 */
public final class LocalCheckpointStore implements CheckpointStore {
    public static final String COMMIT = "COMMIT";
    public static final String MANIFEST = "manifest.json";
    /** Shards stay well below what one S3 PUT or a 32-bit offset can hold, and let uploads run in parallel. */
    public static final long DEFAULT_MAX_SHARD_BYTES = 1L << 30;

    private static final String STAGING_PREFIX = ".staging-";

    private final Path directory;
    private final long maxShardBytes;

    public LocalCheckpointStore(Path runRoot) {
        this(runRoot, DEFAULT_MAX_SHARD_BYTES);
    }

    /** @param maxShardBytes a shard is closed before it would exceed this; a larger single tensor gets its own */
    public LocalCheckpointStore(Path runRoot, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        this.directory = runRoot.resolve("checkpoints");
        this.maxShardBytes = maxShardBytes;
    }

    /** The folder of the checkpoint of {@code step}, committed or not. */
    public Path checkpointDirectory(long step) {
        return directory.resolve(String.format("%010d", step));
    }

    @Override
    public CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException {
        long step = checkpoint.step();
        Path target = checkpointDirectory(step);
        Files.createDirectories(directory);
        if (Files.exists(target.resolve(COMMIT))) {
            throw new IllegalStateException("checkpoint step " + step + " at " + target
                    + " is already committed; delete it before writing it again");
        }
        removeUncommitted();

        Path staging = Files.createTempDirectory(directory, STAGING_PREFIX + target.getFileName() + "-");
        byte[] manifestJson;
        try {
            List<CheckpointManifest.Shard> shards = new ArrayList<>();
            List<List<NamedTensor>> groups = shardGroups(checkpoint.tensors());
            for (int i = 0; i < groups.size(); i++) {
                String file = String.format("tensors-%05d.safetensors", i);
                List<NamedTensor> group = groups.get(i);
                String sha256 = Safetensors.write(staging.resolve(file), group, Map.of("step", Long.toString(step)));
                shards.add(new CheckpointManifest.Shard(file, Files.size(staging.resolve(file)), sha256,
                        group.stream().map(NamedTensor::name).toList()));
            }
            manifestJson = new CheckpointManifest(CheckpointManifest.FORMAT_VERSION, step, writerAttempt,
                    Instant.now().toString(), shards, checkpoint.state()).toJson();
            Files.write(staging.resolve(MANIFEST), manifestJson);
            DurableFiles.fsync(staging.resolve(MANIFEST));
            DurableFiles.publishDirectory(staging, target);
        } catch (IOException | RuntimeException e) {
            DurableFiles.deleteRecursively(staging);
            throw e;
        }
        String manifestSha256 = DurableFiles.sha256Hex(manifestJson);
        DurableFiles.writeAtomically(target.resolve(COMMIT), (manifestSha256 + "\n").getBytes(StandardCharsets.UTF_8));
        return new CheckpointInfo(step, target.toString(), manifestSha256);
    }

    @Override
    public List<Long> committedSteps() throws IOException {
        List<Long> steps = new ArrayList<>();
        if (!Files.isDirectory(directory)) {
            return steps;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                Long step = stepOf(entry);
                if (step != null && Files.exists(entry.resolve(COMMIT))) {
                    steps.add(step);
                }
            }
        }
        steps.sort(null);
        return steps;
    }

    @Override
    public LoadedCheckpoint load(long step) throws IOException {
        Path dir = checkpointDirectory(step);
        String location = dir.toString();
        String commit;
        try {
            commit = Files.readString(dir.resolve(COMMIT), StandardCharsets.UTF_8).strip();
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(location, null, "no committed checkpoint of step " + step);
        }
        byte[] manifestJson;
        try {
            manifestJson = Files.readAllBytes(dir.resolve(MANIFEST));
        } catch (NoSuchFileException e) {
            throw new CorruptCheckpointException(step, location, "manifest.json is missing");
        }
        CheckpointManifest manifest = CheckpointManifest.parse(manifestJson, step, location);
        String manifestSha256 = DurableFiles.sha256Hex(manifestJson);
        if (!manifestSha256.equals(commit)) {
            throw new CorruptCheckpointException(step, location, "manifest.json has sha256 " + manifestSha256
                    + " but COMMIT records " + commit);
        }

        List<NamedTensor> tensors = new ArrayList<>();
        for (CheckpointManifest.Shard shard : manifest.shards()) {
            Path file = shardFile(dir, shard.file(), step, location);
            String actual;
            try {
                actual = sha256Of(file);
            } catch (NoSuchFileException e) {
                throw new CorruptCheckpointException(step, location, "shard " + shard.file() + " is missing");
            }
            if (!actual.equals(shard.sha256())) {
                throw new CorruptCheckpointException(step, location, "shard " + shard.file() + " has sha256 "
                        + actual + " but the manifest records " + shard.sha256());
            }
            Safetensors.Contents contents;
            try {
                contents = Safetensors.read(file);
            } catch (SafetensorsFormatException e) {
                throw new CorruptCheckpointException(step, location, e.getMessage());
            }
            List<String> names = contents.tensors().stream().map(NamedTensor::name).toList();
            if (!names.equals(shard.tensors())) {
                throw new CorruptCheckpointException(step, location, "shard " + shard.file() + " holds " + names
                        + " but the manifest lists " + shard.tensors());
            }
            tensors.addAll(contents.tensors());
        }
        return new LoadedCheckpoint(new Checkpoint(step, tensors, manifest.state()), manifest, List.of());
    }

    @Override
    public void delete(long step) throws IOException {
        Path dir = checkpointDirectory(step);
        Files.deleteIfExists(dir.resolve(COMMIT));
        if (Files.isDirectory(dir)) {
            DurableFiles.fsync(dir);
        }
        DurableFiles.deleteRecursively(dir);
    }

    /**
     * Removes what crashed writers left behind: staging directories and checkpoint directories without COMMIT. None
     * of it is a checkpoint, and a retried write of the same step needs its final name free.
     */
    public void removeUncommitted() throws IOException {
        if (!Files.isDirectory(directory)) {
            return;
        }
        List<Path> debris = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                boolean staging = entry.getFileName().toString().startsWith(STAGING_PREFIX);
                boolean uncommitted = stepOf(entry) != null && !Files.exists(entry.resolve(COMMIT));
                if (staging || uncommitted) {
                    debris.add(entry);
                }
            }
        }
        for (Path path : debris) {
            DurableFiles.deleteRecursively(path);
        }
    }

    private List<List<NamedTensor>> shardGroups(List<NamedTensor> tensors) {
        List<List<NamedTensor>> groups = new ArrayList<>();
        List<NamedTensor> current = new ArrayList<>();
        long currentBytes = 0;
        for (NamedTensor tensor : tensors) {
            if (!current.isEmpty() && currentBytes + tensor.data().length > maxShardBytes) {
                groups.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(tensor);
            currentBytes += tensor.data().length;
        }
        groups.add(current);
        return groups;
    }

    /** A shard name from the manifest, refused when it would point outside the checkpoint's folder. */
    private static Path shardFile(Path dir, String name, long step, String location) {
        Path base = dir.toAbsolutePath().normalize();
        Path file = base.resolve(name).normalize();
        if (!base.equals(file.getParent()) || name.equals(COMMIT) || name.equals(MANIFEST)) {
            throw new CorruptCheckpointException(step, location, "manifest.json names an invalid shard file " + name);
        }
        return file;
    }

    private static String sha256Of(Path file) throws IOException {
        MessageDigest sha256 = DurableFiles.newSha256();
        byte[] buffer = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buffer)) > 0; ) {
                sha256.update(buffer, 0, n);
            }
        }
        return HexFormat.of().formatHex(sha256.digest());
    }

    /** The step a checkpoint folder name stands for, or null for anything else in the folder. */
    private static Long stepOf(Path entry) {
        String name = entry.getFileName().toString();
        if (name.isEmpty() || name.length() > 18 || !name.chars().allMatch(c -> c >= '0' && c <= '9')) {
            return null;
        }
        return Long.parseLong(name);
    }
}
