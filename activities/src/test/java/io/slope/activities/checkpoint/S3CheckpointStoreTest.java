package io.slope.activities.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.activities.Fixtures;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunRow;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CorruptCheckpointException;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.storage.ObjectStore;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The S3 store keeps the local store's commit protocol, and the catalogue arbitrates the latest checkpoint. */
class S3CheckpointStoreTest {
    private static ObjectStore objects;
    private static RunCatalogue catalogue;

    @TempDir
    Path scratch;

    @BeforeAll
    static void servers() {
        objects = Fixtures.objectStore("checkpoints");
        catalogue = Fixtures.catalogue("checkpoint_tests");
    }

    static Checkpoint checkpoint(long step) {
        Random random = new Random(step);
        float[] weights = new float[3000];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = random.nextFloat();
        }
        var state = new ObjectMapper().createObjectNode().put("stepsDone", step);
        return new Checkpoint(step, List.of(NamedTensor.f32("param/w", new long[] {30, 100}, weights),
                NamedTensor.i64("counters", new long[] {2}, new long[] {step, 7})), state);
    }

    private S3CheckpointStore store(String runId) {
        // Small shards, so a checkpoint has several.
        return new S3CheckpointStore(objects, runId, scratch.resolve("s3"));
    }

    @Test
    void writeThenLoadIsExactAndVerified() throws Exception {
        S3CheckpointStore store = store(UUID.randomUUID().toString());
        store.write(checkpoint(0), "attempt-1");
        store.write(checkpoint(10), "attempt-1");
        assertEquals(List.of(0L, 10L), store.committedSteps());
        LoadedCheckpoint loaded = store.load(10);
        assertEquals(checkpoint(10).tensors(), loaded.checkpoint().tensors());
        assertEquals("attempt-1", loaded.manifest().writerAttempt());
        assertTrue(objects.exists(store.prefix(10) + "manifest.json"));
        assertThrows(IllegalStateException.class, () -> store.write(checkpoint(10), "attempt-2"),
                "a committed step is never overwritten");
    }

    @Test
    void checkpointWithoutCommitIsNeverUsed() throws Exception {
        S3CheckpointStore store = store(UUID.randomUUID().toString());
        store.write(checkpoint(0), "a");
        store.write(checkpoint(5), "a");
        objects.delete(store.prefix(5) + LocalCheckpointStore.COMMIT); // a writer that died before its COMMIT
        assertEquals(List.of(0L), store.committedSteps());
        assertThrows(NoSuchFileException.class, () -> store.load(5));
        assertEquals(0, store.loadLatest().orElseThrow().checkpoint().step());
        // The step can be written again: the debris is overwritten.
        store.write(checkpoint(5), "b");
        assertEquals(5, store.loadLatest().orElseThrow().checkpoint().step());
    }

    @Test
    void corruptShardFallsBackToThePreviousCheckpoint() throws Exception {
        S3CheckpointStore store = store(UUID.randomUUID().toString());
        store.write(checkpoint(0), "a");
        store.write(checkpoint(8), "a");
        String shard = store.prefix(8) + "tensors-00000.safetensors";
        byte[] bytes = objects.getBytes(shard).orElseThrow();
        bytes[bytes.length - 1] ^= 1;
        objects.putBytes(shard, bytes);
        CorruptCheckpointException e = assertThrows(CorruptCheckpointException.class, () -> store.load(8));
        assertTrue(e.getMessage().contains("s3://checkpoints/" + store.prefix(8)), e.getMessage());
        assertTrue(e.getMessage().contains("sha256"), e.getMessage());
        LoadedCheckpoint latest = store.loadLatest().orElseThrow();
        assertEquals(0, latest.checkpoint().step());
        assertEquals(8, latest.skipped().getFirst().step());
    }

    @Test
    void staleAttemptCannotMoveTheLatestBack() throws Exception {
        UUID run = Fixtures.newRun(catalogue, Fixtures.tinySpec("/corpus"));
        S3CheckpointStore s3 = store(run.toString());
        CatalogedCheckpointStore current = new CatalogedCheckpointStore(s3, catalogue, run);
        current.write(checkpoint(0), "attempt-2");
        current.write(checkpoint(20), "attempt-2");
        // A zombie attempt that had fallen behind commits an older step afterwards.
        CatalogedCheckpointStore zombie = new CatalogedCheckpointStore(s3, catalogue, run);
        zombie.write(checkpoint(10), "attempt-1");
        RunRow row = catalogue.run(run).orElseThrow();
        assertEquals(20, row.latestStep());
        assertEquals("attempt-2", row.latestAttempt());
        assertTrue(new String(objects.getBytes(s3.root() + "LATEST").orElseThrow()).contains("\"step\":20"),
                "the LATEST mirror follows the arbiter");
        assertEquals(List.of(0L, 10L, 20L), catalogue.checkpoints(run).stream().map(r -> r.step()).toList());
    }

    @Test
    void garbageCollectionDeletesObjectsThenRowsAndIsIdempotent() throws Exception {
        UUID run = Fixtures.newRun(catalogue, Fixtures.tinySpec("/corpus"));
        S3CheckpointStore s3 = store(run.toString());
        CatalogedCheckpointStore store = new CatalogedCheckpointStore(s3, catalogue, run);
        for (long step = 0; step <= 50; step += 10) {
            if (step == 20) {
                store.noteValidationLoss(step, 1.5); // the best
            } else if (step > 0) {
                store.noteValidationLoss(step, 2.0 + step / 100.0);
            }
            store.write(checkpoint(step), "a");
        }
        CheckpointGc gc = new CheckpointGc(catalogue);
        // A crash after the objects of step 0 were deleted but before its row was: the next GC finishes the job.
        s3.delete(0);
        List<Long> deleted = gc.collect(run, s3, new RetentionPolicy(2, 1, 0));
        assertEquals(List.of(0L, 10L, 30L), deleted);
        assertEquals(List.of(20L, 40L, 50L), s3.committedSteps());
        assertEquals(List.of(20L, 40L, 50L), catalogue.checkpoints(run).stream().map(r -> r.step()).toList());
        assertFalse(objects.list(s3.prefix(10)).iterator().hasNext(), "no debris left of a deleted checkpoint");
        assertEquals(List.of(), gc.collect(run, s3, new RetentionPolicy(2, 1, 0)), "a second GC changes nothing");
    }
}
