package io.slope.gpuworker;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.activities.checkpoint.S3CheckpointStore;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.localservices.S3Server;
import io.slope.testinfra.TestServices;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.UUID;

/**
 * Checkpoint save and restore throughput (MB/s) through the S3 store on S3Proxy and through the local store, next to
 * this machine's bounds: sequential disk write with fsync, and single-core SHA-256. A benchmark, not a test:
 * bench/checkpoint-io runs it and writes bench/results/checkpoint-io-DATE.md.
 *
 * <p>Usage: CheckpointIoBench [MiB, default 256] [results folder]
 */
public final class CheckpointIoBench {
    private CheckpointIoBench() {}

    public static void main(String[] args) throws Exception {
        int mib = args.length > 0 ? Integer.parseInt(args[0]) : 256;
        Path results = Path.of(args.length > 1 ? args[1] : "../bench/results");
        Path scratch = TestServices.get().scratch("checkpoint-io");
        Checkpoint checkpoint = checkpoint(mib);
        double mb = mib * 1.048576;
        List<String> rows = new ArrayList<>();

        double disk = diskWrite(scratch.resolve("disk.bin"), mib);
        rows.add(row("disk write + fsync (bound)", mb, disk));
        double sha = sha256(checkpoint);
        rows.add(row("SHA-256, one core (bound)", mb, sha));

        LocalCheckpointStore local = new LocalCheckpointStore(scratch.resolve("local"));
        long t = System.nanoTime();
        local.write(checkpoint, "bench");
        rows.add(row("local store: save (write, hash, fsync, rename, COMMIT)", mb, secondsSince(t)));
        t = System.nanoTime();
        local.load(checkpoint.step());
        rows.add(row("local store: restore (read, verify)", mb, secondsSince(t)));

        S3Server s3 = TestServices.get().s3();
        ObjectStore objects = new ObjectStore(new S3Config(s3.endpoint(), S3Server.ACCESS_KEY, S3Server.SECRET_KEY,
                "bench", null));
        objects.ensureBucket();
        S3CheckpointStore store = new S3CheckpointStore(objects, UUID.randomUUID().toString(), scratch.resolve("s3"));
        t = System.nanoTime();
        store.write(checkpoint, "bench");
        rows.add(row("S3 store (S3Proxy, loopback): save (stage locally, upload, COMMIT)", mb, secondsSince(t)));
        t = System.nanoTime();
        store.load(checkpoint.step());
        rows.add(row("S3 store (S3Proxy, loopback): restore (download, verify)", mb, secondsSince(t)));

        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmm"));
        String md = "# Checkpoint I/O " + stamp + "\n\nOne " + mib + " MiB checkpoint (fp32 tensors in one shard; S3 "
                + "multipart parts of " + (ObjectStore.PART_SIZE >> 20) + " MiB), " + Runtime.getRuntime().availableProcessors() + " cores, scratch on " + scratch
                + ". S3Proxy (filesystem backend) writes to the same disk as the local store.\n\n"
                + "| what | seconds | MB/s |\n|---|---|---|\n" + String.join("\n", rows) + "\n";
        Files.createDirectories(results);
        Files.writeString(results.resolve("checkpoint-io-" + stamp + ".md"), md);
        System.out.println(md);
        System.exit(0);
    }

    private static Checkpoint checkpoint(int mib) {
        Random random = new Random(1);
        List<NamedTensor> tensors = new ArrayList<>();
        int perTensor = 16 << 20; // 16 MiB of floats each
        for (int i = 0; i < mib / 16; i++) {
            float[] values = new float[perTensor / 4];
            for (int j = 0; j < values.length; j++) {
                values[j] = random.nextFloat();
            }
            tensors.add(NamedTensor.f32("param/t" + i, new long[] {values.length}, values));
        }
        return new Checkpoint(1, tensors, new ObjectMapper().createObjectNode().put("stepsDone", 1));
    }

    private static double diskWrite(Path file, int mib) throws Exception {
        byte[] block = new byte[1 << 20];
        new Random(2).nextBytes(block);
        long t = System.nanoTime();
        try (OutputStream out = Files.newOutputStream(file, StandardOpenOption.CREATE_NEW)) {
            for (int i = 0; i < mib; i++) {
                out.write(block);
            }
        }
        DurableFiles.fsync(file);
        double seconds = secondsSince(t);
        Files.delete(file);
        return seconds;
    }

    private static double sha256(Checkpoint checkpoint) {
        var digest = DurableFiles.newSha256();
        long t = System.nanoTime();
        for (NamedTensor tensor : checkpoint.tensors()) {
            digest.update(tensor.data());
        }
        digest.digest();
        return secondsSince(t);
    }

    private static double secondsSince(long t) {
        return (System.nanoTime() - t) / 1e9;
    }

    private static String row(String what, double mb, double seconds) {
        return String.format(Locale.ROOT, "| %s | %.2f | %.0f |", what, seconds, mb / seconds);
    }
}
