package io.slope.engine.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A writer JVM killed with SIGKILL at any moment (while writing shards, the manifest, COMMIT, or while deleting an old
 * checkpoint) leaves a store whose latest committed checkpoint loads and verifies, and that the next writer can use.
 */
class CheckpointCrashTest {
    @TempDir
    Path runRoot;

    @Test
    void killedWriterLeavesTheStoreLoadable() throws Exception {
        LocalCheckpointStore store = new LocalCheckpointStore(runRoot, CheckpointWriterProcess.TENSOR_BYTES);
        long lastCommitted = -1;
        int[] commitsBeforeKill = {0, 1, 1, 2, 3};
        int[] extraDelayMillis = {0, 5, 23, 11, 37};
        for (int attempt = 0; attempt < commitsBeforeKill.length; attempt++) {
            long firstStep = lastCommitted + 1;
            Process writer = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-cp", System.getProperty("java.class.path"), CheckpointWriterProcess.class.getName(),
                    runRoot.toString(), Long.toString(firstStep))
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            try (BufferedReader out = writer.inputReader(StandardCharsets.UTF_8)) {
                expectLine(out, "started", writer);
                for (int i = 0; i < commitsBeforeKill[attempt]; i++) {
                    lastCommitted = firstStep + i;
                    expectLine(out, "committed " + lastCommitted, writer);
                }
                Thread.sleep(extraDelayMillis[attempt]);
                writer.destroyForcibly(); // SIGKILL on Linux: no shutdown hooks, no finally blocks
                assertTrue(writer.waitFor(10, TimeUnit.SECONDS), "the writer did not die");
            }

            Optional<LoadedCheckpoint> latest = store.loadLatest();
            if (latest.isEmpty()) {
                assertEquals(-1, lastCommitted, "a checkpoint the writer reported committed is gone");
                continue;
            }
            Checkpoint checkpoint = latest.get().checkpoint();
            assertTrue(checkpoint.step() >= lastCommitted, "latest " + checkpoint.step() + " < " + lastCommitted);
            lastCommitted = checkpoint.step(); // more may have committed between our last read and the kill
            assertEquals(List.of(), latest.get().skipped());
            assertArrayEquals(new long[] {checkpoint.step()}, checkpoint.tensor("step").toLongs());
            assertArrayEquals(CheckpointWriterProcess.pattern(checkpoint.step(), 0), checkpoint.tensor("a").toBytes());
            assertArrayEquals(CheckpointWriterProcess.pattern(checkpoint.step(), 1), checkpoint.tensor("b").toBytes());
            for (long step : store.committedSteps()) {
                store.load(step); // every listed checkpoint verifies, not only the latest
            }
        }
        assertTrue(lastCommitted >= 0, "no attempt committed anything");
        // The next writer cleans up the debris of the killed ones and commits.
        store.write(CheckpointWriterProcess.checkpoint(lastCommitted + 1), "after-crashes");
        assertEquals(lastCommitted + 1, store.loadLatest().orElseThrow().checkpoint().step());
        try (var entries = java.nio.file.Files.list(runRoot.resolve("checkpoints"))) {
            assertTrue(entries.allMatch(entry -> java.nio.file.Files.exists(entry.resolve("COMMIT"))),
                    "staging and uncommitted folders are removed by the next write");
        }
    }

    private static void expectLine(BufferedReader out, String expected, Process writer) throws IOException {
        String line = out.readLine();
        if (!expected.equals(line)) {
            writer.destroyForcibly();
            fail("the writer printed " + line + " where " + expected + " was expected");
        }
    }
}
