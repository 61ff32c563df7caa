package io.slope.cli.train;

import static io.slope.cli.train.SlopeProcesses.checkpoint;
import static io.slope.cli.train.SlopeProcesses.committed;
import static io.slope.cli.train.SlopeProcesses.kill;
import static io.slope.cli.train.SlopeProcesses.losses;
import static io.slope.cli.train.SlopeProcesses.slope;
import static io.slope.cli.train.SlopeProcesses.summary;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.cli.train.SlopeProcesses.Result;
import io.slope.cli.train.SlopeProcesses.Slope;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.NamedTensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Ctrl-C (SIGINT) on a one-rank {@code slope train}: a real process of this class path, on the CPU backend in fp64,
 * with a tiny char-level model. The first signal stops the run after the current step with a checkpoint there (no
 * periodic checkpoint would save it: checkpointEvery is above the run's steps), and the resumed run is the
 * uninterrupted one bit for bit; a second signal quits at once.
 */
class TrainStopTest {
    private static final int STEPS = 300;
    private static final Duration BOUND = Duration.ofSeconds(30);
    private static final Pattern STOPPED = Pattern.compile("slope train: stopped after step (\\d+) of " + STEPS
            + " \\(checkpoint committed\\); resume with: slope train --resume (\\S+)");

    @TempDir
    static Path dir;

    @BeforeAll
    static void corpusAndSpecs() throws IOException {
        SlopeProcesses.writeCorpus(dir, "test/train-stop-corpus");
        Files.writeString(dir.resolve("tiny.json"), spec("tiny", 16, 8, 4));
        // Steps long enough (about a second) that a second signal comes before the first one's step ends, also on
        // a loaded machine.
        Files.writeString(dir.resolve("slow.json"), spec("slow", 256, 128, 8));
    }

    private static String spec(String name, int dModel, int seqLen, int batchSize) {
        return """
                {"name": "%s", "model": {"layers": 1, "heads": 2, "dModel": %d, "seqLen": %d},
                 "sparsity": {"mode": "slope"}, "adapters": {"start": 0.75, "rank": 4},
                 "optimizer": {"lr": 0.01, "warmupSteps": 2},
                 "training": {"steps": %d, "batchSize": %d, "gradAccum": 2, "seed": 5},
                 "data": {"corpus": ["corpus.txt"], "tokenizer": "char"}, "eval": {"every": 0, "maxWindows": 2},
                 "checkpointEvery": 1000, "backend": "cpu", "precision": "fp64", "threads": 1}
                """.formatted(name, dModel, seqLen, STEPS, batchSize);
    }

    @Test
    void sigintStopsAfterTheStepWithACheckpointAndTheResumedRunEqualsAnUninterruptedOneBitForBit() throws Exception {
        Result straight = slope(dir, "train", "--spec", "tiny.json", "--out", "straight");
        assertEquals(0, straight.exitCode(), straight.err());

        Path runDir = dir.resolve("stopped").toAbsolutePath();
        Slope slope = SlopeProcesses.start(dir, "train", "--spec", "tiny.json", "--out", runDir.toString());
        awaitSteps(slope, runDir, 5);
        kill("INT", slope.process().toHandle());
        Result stopped = slope.exitAfter("SIGINT", BOUND);
        assertEquals(130, stopped.exitCode(), stopped.err());
        assertTrue(stopped.err().contains("slope train: SIGINT: stopping after this step (a checkpoint is written "
                + "there); press Ctrl-C again to quit now"), stopped.err());
        Matcher m = STOPPED.matcher(stopped.err());
        assertTrue(m.find(), stopped.err());
        int step = Integer.parseInt(m.group(1));
        assertEquals(runDir.toString(), m.group(2));
        assertTrue(step >= 5 && step < STEPS, "stopped mid-run, after step " + step);
        assertEquals(step, committed(runDir), "the checkpoint is at the step it stopped after");
        assertEquals(step, losses(runDir).length, "metrics.jsonl ends at that step");
        assertFalse(stopped.out().strip().endsWith("}"), "a stopped run prints no summary");
        assertFalse(Files.exists(runDir.resolve("hf")), "nor exports");

        Result resumed = slope(dir, "train", "--resume", runDir.toString());
        assertEquals(0, resumed.exitCode(), resumed.err());
        assertTrue(resumed.out().contains("resumed after step " + step), resumed.out());
        assertArrayEquals(losses(dir.resolve("straight")), losses(runDir), "the loss of every step");
        assertSameBits(checkpoint(dir.resolve("straight"), STEPS), checkpoint(runDir, STEPS));
        for (String key : new String[] {"val_loss_sparse", "val_loss_adapters", "val_loss_merged",
            "val_loss_inference_form"}) {
            assertEquals(summary(straight).get(key).asDouble(), summary(resumed).get(key).asDouble(), key);
        }
    }

    @Test
    void aSecondSigintQuitsAtOnceWithoutTheStopCheckpoint() throws Exception {
        Path runDir = dir.resolve("quit").toAbsolutePath();
        Slope slope = SlopeProcesses.start(dir, "train", "--spec", "slow.json", "--out", runDir.toString());
        awaitSteps(slope, runDir, 2);
        kill("INT", slope.process().toHandle());
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (!slope.errSoFar().contains("stopping after this step")) {
            assertTrue(slope.process().isAlive() && System.nanoTime() < deadline, "no reply to SIGINT: "
                    + slope.errSoFar());
            Thread.sleep(1);
        }
        kill("INT", slope.process().toHandle());
        Result quit = slope.exitAfter("a second SIGINT", BOUND);
        assertEquals(130, quit.exitCode(), quit.err());
        assertTrue(quit.err().contains("slope train: SIGINT: quitting now. Resume from the last committed checkpoint "
                + "(step 0):\n  slope train --resume " + runDir), quit.err());
        assertFalse(quit.err().contains("stopped after step"), quit.err());
        assertEquals(0, committed(runDir), "no checkpoint at the stop");
    }

    @Test
    void sigintBeforeTheFirstCheckpointQuitsAndRemovesTheNewRunFolder() throws Exception {
        // A corpus large enough that preparing it takes a while: the signal comes while the data is tokenized.
        Files.writeString(dir.resolve("big.txt"), "abcdefgh \n".repeat(3_000_000));
        Files.writeString(dir.resolve("big.json"), Files.readString(dir.resolve("tiny.json"))
                .replace("corpus.txt", "big.txt"));
        Path runDir = dir.resolve("early").toAbsolutePath();
        Slope slope = SlopeProcesses.start(dir, "train", "--spec", "big.json", "--out", runDir.toString());
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (!Files.exists(runDir)) {
            assertTrue(slope.process().isAlive() && System.nanoTime() < deadline, "no run folder: " + slope.errSoFar());
            Thread.sleep(1);
        }
        assertTrue(committed(runDir) < 0, "signalled before the first checkpoint");
        kill("INT", slope.process().toHandle());
        Result quit = slope.exitAfter("SIGINT", BOUND);
        assertEquals(130, quit.exitCode(), quit.err());
        assertTrue(quit.err().contains("slope train: SIGINT: quitting now. No checkpoint was committed (the run "
                + "folder is removed)"), quit.err());
        assertFalse(Files.exists(runDir), "the unstarted run's folder is gone: " + quit.err());
    }

    /** Waits until the run has logged {@code steps} steps. */
    private static void awaitSteps(Slope slope, Path runDir, int steps) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (losses(runDir).length < steps) {
            assertTrue(slope.process().isAlive() && System.nanoTime() < deadline, "no " + steps + " steps within "
                    + "60 s: " + slope.errSoFar());
            Thread.sleep(2);
        }
    }

    /** Every tensor and the optimizer's step counts equal, to the bit. */
    private static void assertSameBits(Checkpoint expected, Checkpoint actual) {
        assertEquals(expected.tensors().size(), actual.tensors().size());
        for (NamedTensor e : expected.tensors()) {
            assertEquals(e, actual.tensor(e.name()), e.name()); // name, type, shape and bytes
        }
        assertEquals(expected.state().get("adamSteps"), actual.state().get("adamSteps"));
        assertEquals(expected.state().get("adapterAdamSteps"), actual.state().get("adapterAdamSteps"));
    }
}
