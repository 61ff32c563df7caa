package io.slope.engine.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LocalCheckpointStoreTest {
    @TempDir
    Path runRoot;

    static Checkpoint checkpoint(long step) {
        double[] weights = new double[64];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = Math.sin(step * 100 + i);
        }
        byte[] mask = new byte[16];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = (byte) ((step + i) % 2);
        }
        ObjectNode state = new ObjectMapper().createObjectNode();
        state.put("step", step).put("rngCounter", step * 1000).putObject("loader").put("nextSample", step * 32);
        return new Checkpoint(step, List.of(
                NamedTensor.f64("h.0.attn.weight", new long[] {8, 8}, weights),
                NamedTensor.f32("h.0.attn.weight.adam_m", new long[] {8, 8}, weights),
                NamedTensor.u8("h.0.attn.row_mask", new long[] {4, 4}, mask),
                NamedTensor.i32("positions", new long[] {3}, new int[] {0, 1, (int) step})), state);
    }

    @Test
    void checkpointRoundTripsTensorsAndState() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        CheckpointInfo info = store.write(checkpoint(100), "attempt-1");
        assertEquals(runRoot.resolve("checkpoints/0000000100").toString(), info.location());

        LoadedCheckpoint loaded = store.loadLatest().orElseThrow();
        Checkpoint expected = checkpoint(100);
        assertEquals(100, loaded.checkpoint().step());
        assertEquals(expected.tensors(), loaded.checkpoint().tensors());
        assertArrayEquals(expected.tensor("h.0.attn.weight").toDoubles(),
                loaded.checkpoint().tensor("h.0.attn.weight").toDoubles());
        // as JSON text: Jackson reads 100 back as an int node, while the test wrote it as a long node
        assertEquals(expected.state().toString(), loaded.checkpoint().state().toString());
        assertEquals("attempt-1", loaded.manifest().writerAttempt());
        assertEquals(CheckpointManifest.FORMAT_VERSION, loaded.manifest().formatVersion());
        assertEquals(List.of(), loaded.skipped());
        assertEquals(info.manifestSha256(), Files.readString(Path.of(info.location(), "COMMIT")).strip());
    }

    @Test
    void tensorsAreSplitIntoShardsOfTheConfiguredSize() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot, 600);
        store.write(checkpoint(1), "a");
        LoadedCheckpoint loaded = store.load(1);
        assertEquals(List.of(List.of("h.0.attn.weight"), List.of("h.0.attn.weight.adam_m", "h.0.attn.row_mask",
                "positions")), loaded.manifest().shards().stream().map(CheckpointManifest.Shard::tensors).toList());
        assertEquals(checkpoint(1).tensors(), loaded.checkpoint().tensors());
    }

    @Test
    void committedStepsAreListedAscendingAndUncommittedOnesNever() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        for (long step : new long[] {20, 3, 100}) {
            store.write(checkpoint(step), "a");
        }
        Files.delete(store.checkpointDirectory(100).resolve("COMMIT"));
        Files.createDirectories(runRoot.resolve("checkpoints/.staging-0000000200-123"));

        assertEquals(List.of(3L, 20L), store.committedSteps());
        assertEquals(20, store.loadLatest().orElseThrow().checkpoint().step());
        assertThrows(NoSuchFileException.class, () -> store.load(100));
    }

    @Test
    void corruptShardIsSkippedWithAMessageAndThePreviousCheckpointLoaded() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(10), "a");
        store.write(checkpoint(20), "a");
        Path shard = store.checkpointDirectory(20).resolve("tensors-00000.safetensors");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length - 1] ^= 0x40;
        Files.write(shard, bytes);

        List<String> warnings = new ArrayList<>();
        LoadedCheckpoint loaded = withWarningsCaptured(warnings, store::loadLatest).orElseThrow();

        assertEquals(10, loaded.checkpoint().step());
        assertEquals(checkpoint(10).tensors(), loaded.checkpoint().tensors());
        assertEquals(1, loaded.skipped().size());
        assertEquals(20, loaded.skipped().getFirst().step());
        String reason = loaded.skipped().getFirst().reason();
        assertTrue(reason.startsWith("checkpoint step 20 at " + store.checkpointDirectory(20)
                + " is corrupt: shard tensors-00000.safetensors has sha256 "), reason);
        assertEquals(List.of(reason + "; falling back to the previous committed checkpoint"), warnings);
    }

    @Test
    void manifestThatDoesNotMatchCommitIsCorrupt() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(5), "a");
        Path manifest = store.checkpointDirectory(5).resolve("manifest.json");
        Files.writeString(manifest, Files.readString(manifest).replace("\"rngCounter\" : 5000", "\"rngCounter\" : 6"));
        var e = assertThrows(CorruptCheckpointException.class, () -> store.load(5));
        assertTrue(e.getMessage().contains("manifest.json has sha256"), e.getMessage());
        assertTrue(e.getMessage().contains("but COMMIT records"), e.getMessage());
    }

    @Test
    void missingShardIsCorrupt() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(5), "a");
        Files.delete(store.checkpointDirectory(5).resolve("tensors-00000.safetensors"));
        var e = assertThrows(CorruptCheckpointException.class, () -> store.load(5));
        assertTrue(e.getMessage().endsWith("is corrupt: shard tensors-00000.safetensors is missing"), e.getMessage());
    }

    @Test
    void noVerifiableCheckpointIsAnErrorRatherThanAFreshStart() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(5), "a");
        Files.delete(store.checkpointDirectory(5).resolve("manifest.json"));
        var e = assertThrows(CorruptCheckpointException.class,
                () -> withWarningsCaptured(new ArrayList<>(), store::loadLatest));
        assertTrue(e.getMessage().startsWith("no committed checkpoint verifies: "), e.getMessage());
        assertTrue(e.getMessage().contains("manifest.json is missing"), e.getMessage());
    }

    @Test
    void unknownFormatVersionIsRefusedNotSkipped() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(1), "a");
        store.write(checkpoint(2), "a");
        Path manifest = store.checkpointDirectory(2).resolve("manifest.json");
        Files.writeString(manifest,
                Files.readString(manifest).replace("\"formatVersion\" : 1", "\"formatVersion\" : 99"));

        var e = assertThrows(UnsupportedCheckpointFormatException.class, store::loadLatest);
        assertEquals("checkpoint step 2 at " + store.checkpointDirectory(2) + " has formatVersion 99, but this version"
                + " of slope reads only formatVersion 1; use a slope release that writes formatVersion 99",
                e.getMessage());
    }

    @Test
    void emptyStoreHasNoLatestCheckpoint() throws IOException {
        assertTrue(new LocalCheckpointStore(runRoot).loadLatest().isEmpty());
    }

    @Test
    void committedStepIsNotOverwrittenButAnUncommittedOneIsReplaced() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(7), "first");
        var e = assertThrows(IllegalStateException.class, () -> store.write(checkpoint(7), "second"));
        assertTrue(e.getMessage().contains("already committed"), e.getMessage());

        // A writer that died between the rename and COMMIT leaves the final folder without COMMIT.
        Files.delete(store.checkpointDirectory(7).resolve("COMMIT"));
        store.write(checkpoint(7), "retry");
        assertEquals("retry", store.load(7).manifest().writerAttempt());
    }

    @Test
    void deleteUncommitsFirstAndIsIdempotent() throws IOException {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
        store.write(checkpoint(1), "a");
        store.write(checkpoint(2), "a");
        store.delete(2);
        store.delete(2);
        assertEquals(List.of(1L), store.committedSteps());
        assertTrue(Files.notExists(store.checkpointDirectory(2)));
    }

    /** Runs {@code action} recording the store's log warnings instead of printing them. */
    static <T> T withWarningsCaptured(List<String> warnings, IoSupplier<T> action) throws IOException {
        Logger logger = Logger.getLogger(CheckpointStore.class.getName());
        Handler handler = new Handler() {
            @Override
            public void publish(LogRecord record) {
                warnings.add(record.getMessage());
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        logger.addHandler(handler);
        logger.setUseParentHandlers(false);
        try {
            return action.get();
        } finally {
            logger.removeHandler(handler);
            logger.setUseParentHandlers(true);
        }
    }

    interface IoSupplier<T> {
        T get() throws IOException;
    }
}
