package io.slope.cli.train;

import static io.slope.cli.train.SlopeProcesses.checkpoint;
import static io.slope.cli.train.SlopeProcesses.committed;
import static io.slope.cli.train.SlopeProcesses.kill;
import static io.slope.cli.train.SlopeProcesses.losses;
import static io.slope.cli.train.SlopeProcesses.summary;
import static io.slope.engine.Norms.relativeError;
import static io.slope.engine.parallel.SameModel.FP64_ORDER_TOLERANCE;
import static io.slope.engine.parallel.SameModel.assertSameModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.cli.train.SlopeProcesses.Result;
import io.slope.cli.train.SlopeProcesses.Slope;
import io.slope.engine.backend.Backends;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code slope train --ranks N} end to end: the launcher and its ranks are real processes of this class path, on the
 * CPU backend in fp64, with a tiny char-level model.
 *
 * <p>Tolerance: N ranks sum the same micro-batch gradients as one rank, in another order (each rank sums its own
 * micro-batches, then the ranks' sums are added in rank order), so the runs are not bit-identical: fp64 rounding
 * differs in the last bits of each step's gradient and loss, and a few steps of AdamW keep that near 1e-15 relative.
 * The engine's own data-parallel test bounds such runs normwise by {@code SameModel.FP64_ORDER_TOLERANCE} (1e-10);
 * the same bound holds here for the loss curve and every tensor of the final checkpoint, and the masks are equal.
 */
class TrainRanksTest {
    private static final int STEPS = 8;
    /** The run the kill test interrupts: long enough to be caught between checkpoints. */
    private static final int LONG_STEPS = 200;
    private static final Duration KILL_BOUND = Duration.ofSeconds(30);
    /** The run the SIGTERM test stops: no periodic checkpoint but step 0 (checkpointEvery above its steps). */
    private static final int STOP_STEPS = 1000;

    @TempDir
    static Path dir;

    @BeforeAll
    static void corpusAndSpecs() throws IOException {
        SlopeProcesses.writeCorpus(dir, "test/train-ranks-corpus");
        Files.writeString(dir.resolve("short.json"), spec("short", STEPS, 2));
        Files.writeString(dir.resolve("long.json"), spec("long", LONG_STEPS, 25));
        Files.writeString(dir.resolve("stop.json"), spec("stop", STOP_STEPS, 1000));
        // Steps of a few hundred ms: a second signal comes before the ranks reach the first one's stop.
        Files.writeString(dir.resolve("slow.json"), spec("slow", STOP_STEPS, 1000)
                .replace("\"dModel\": 16, \"seqLen\": 8", "\"dModel\": 128, \"seqLen\": 128")
                .replace("\"batchSize\": 2", "\"batchSize\": 8"));
    }

    private static String spec(String name, int steps, int checkpointEvery) {
        return """
                {"name": "%s", "model": {"layers": 1, "heads": 2, "dModel": 16, "seqLen": 8},
                 "sparsity": {"mode": "slope"}, "adapters": {"start": 0.75, "rank": 4},
                 "optimizer": {"lr": 0.01, "warmupSteps": 2},
                 "training": {"steps": %d, "batchSize": 2, "gradAccum": 4, "seed": 3},
                 "data": {"corpus": ["corpus.txt"], "tokenizer": "char"}, "eval": {"every": 0, "maxWindows": 2},
                 "checkpointEvery": %d, "backend": "cpu", "precision": "fp64", "threads": 1}
                """.formatted(name, steps, checkpointEvery);
    }

    @Test
    void twoRanksTrainTheSameLossCurveAndModelAsOne() throws Exception {
        Result one = slope("train", "--spec", dir.resolve("short.json").toString(), "--out", run("one"), "--ranks",
                "1");
        assertEquals(0, one.exitCode(), one.err());
        Result two = slope("train", "--spec", dir.resolve("short.json").toString(), "--out", run("two"), "--ranks",
                "2", "--log-every", "1");
        assertEquals(0, two.exitCode(), two.err());

        assertEquals(1, summary(one).get("ranks").asInt());
        JsonNode summary = summary(two);
        assertEquals(2, summary.get("ranks").asInt());
        assertEquals(STEPS, summary.get("steps").asInt());
        assertTrue(summary.get("val_loss_merged").isNumber(), two.out());
        assertTrue(Files.isDirectory(dir.resolve("two/hf")) && Files.isDirectory(dir.resolve("two/slope")));
        assertTrue(Files.readString(dir.resolve("two/rank-1.log")).contains("rank 1 of 2"), "rank 1 logs apart");
        assertTrue(two.out().contains("step 8/8"), "rank 0 prints progress: " + two.out());

        double[] lossOne = losses(dir.resolve("one"));
        double[] lossTwo = losses(dir.resolve("two"));
        assertEquals(STEPS, lossTwo.length);
        double err = relativeError(lossTwo, lossOne);
        System.out.printf("loss curves of 1 and 2 ranks: normwise relative difference %.3g%n", err);
        assertTrue(err < FP64_ORDER_TOLERANCE, "loss curves differ normwise by " + err);
        assertSameModel(finalCheckpoint("one", STEPS), finalCheckpoint("two", STEPS));
    }

    @Test
    void aRankKilledMidRunStopsTheOthersAndTheRunResumesOnOneRank() throws Exception {
        Result reference = slope("train", "--spec", dir.resolve("long.json").toString(), "--out", run("straight"));
        assertEquals(0, reference.exitCode(), reference.err());

        Path killed = dir.resolve("killed");
        Slope slope = startLongRunOnTwoRanks(killed);
        Process launcher = slope.process();
        // Rank 1 writes its pid; kill it once a checkpoint after step 0 is in.
        ProcessHandle rank1 = null;
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        Path pidFile = RankCommand.pidFile(killed, 1);
        while (rank1 == null || committed(killed) < 25) {
            if (!launcher.isAlive()) {
                throw new AssertionError("the launcher ended before the kill: " + slope.result());
            }
            assertTrue(System.nanoTime() < deadline, "no checkpoint after step 0 within 60 s");
            if (rank1 == null && Files.exists(pidFile) && Files.readString(pidFile).endsWith("\n")) {
                rank1 = ProcessHandle.of(Long.parseLong(Files.readString(pidFile).strip())).orElseThrow();
            }
            Thread.sleep(10);
        }
        List<ProcessHandle> ranks = launcher.toHandle().descendants().toList();
        assertEquals(2, ranks.size(), "two rank processes");
        assertTrue(ranks.contains(rank1), "rank 1 is the launcher's child");
        int stepsBeforeKill = losses(killed).length;
        assertTrue(stepsBeforeKill < LONG_STEPS, "killed mid-run");
        long killedAt = System.nanoTime();
        assertTrue(rank1.destroyForcibly(), "SIGKILL rank 1");

        assertTrue(launcher.waitFor(KILL_BOUND.toSeconds(), TimeUnit.SECONDS), "the launcher outlived the kill");
        double seconds = (System.nanoTime() - killedAt) / 1e9;
        System.out.printf("launcher exited %.2f s after rank 1 was killed, at step %d of %d%n", seconds,
                stepsBeforeKill, LONG_STEPS);
        Result failed = slope.result();
        System.out.println(failed.err());
        assertNotEquals(0, failed.exitCode());
        assertTrue(failed.err().contains("rank 1 of 2 was killed by SIGKILL (exit status 137)"), failed.err());
        assertTrue(failed.err().contains("slope train --resume " + killed.toAbsolutePath() + " --ranks 2"),
                failed.err());
        assertTrue(failed.err().contains("last lines of " + killed.toAbsolutePath().resolve("rank-1.log")),
                failed.err());
        for (ProcessHandle rank : ranks) {
            rank.onExit().get(5, TimeUnit.SECONDS);
            assertFalse(rank.isAlive(), "orphan rank process " + rank.pid());
        }
        long resumedFrom = committed(killed);
        assertTrue(resumedFrom < LONG_STEPS, "the run stopped before its end");

        Result resumed = slope("train", "--resume", killed.toString(), "--ranks", "1");
        assertEquals(0, resumed.exitCode(), resumed.err());
        assertTrue(resumed.out().contains("resumed after step " + resumedFrom), resumed.out());
        assertEquals(1, summary(resumed).get("ranks").asInt());
        assertSameModel(finalCheckpoint("straight", LONG_STEPS), finalCheckpoint("killed", LONG_STEPS));
    }

    @Test
    void sigtermOnTheLauncherStopsEveryRankAfterTheSameStepWithACheckpointAndTheRunResumesOnOneRank() throws Exception {
        Result reference = slope("train", "--spec", dir.resolve("stop.json").toString(), "--out", run("unstopped"));
        assertEquals(0, reference.exitCode(), reference.err());

        Path stopped = dir.resolve("stopped");
        Slope slope = twoRanksSomeStepsIn(stopped, "stop.json", 5);
        slope.process().destroy(); // SIGTERM to the launcher alone, as `kill` sends; it forwards the request
        long step = assertStoppedAtOneStep(slope, stopped, "SIGTERM", 128 + 15);

        Result resumed = slope("train", "--resume", stopped.toString(), "--ranks", "1");
        assertEquals(0, resumed.exitCode(), resumed.err());
        assertTrue(resumed.out().contains("resumed after step " + step), resumed.out());
        double err = relativeError(losses(stopped), losses(dir.resolve("unstopped")));
        assertTrue(err < FP64_ORDER_TOLERANCE, "loss curves differ normwise by " + err);
        assertSameModel(finalCheckpoint("unstopped", STOP_STEPS), finalCheckpoint("stopped", STOP_STEPS));
    }

    @Test
    void aCtrlCThatReachesTheLauncherAndEveryRankIsOneStopRequest() throws Exception {
        Path stopped = dir.resolve("ctrl-c");
        Slope slope = twoRanksSomeStepsIn(stopped, "stop.json", 5);
        List<ProcessHandle> all = new ArrayList<>(slope.process().toHandle().descendants().toList());
        all.add(slope.process().toHandle());
        kill("INT", all.toArray(ProcessHandle[]::new)); // the terminal's foreground process group
        assertStoppedAtOneStep(slope, stopped, "SIGINT", 130);
    }

    @Test
    void aSecondSigtermOnTheLauncherKillsEveryRankAtOnce() throws Exception {
        Path killed = dir.resolve("second-signal");
        Slope slope = twoRanksSomeStepsIn(killed, "slow.json", 1);
        Process launcher = slope.process();
        List<ProcessHandle> ranks = launcher.toHandle().descendants().toList();
        launcher.destroy();
        long deadline = System.nanoTime() + KILL_BOUND.toNanos();
        while (!slope.errSoFar().contains("stopping all 2 ranks after this step")) {
            assertTrue(launcher.isAlive() && System.nanoTime() < deadline, "no reply to SIGTERM: " + slope.errSoFar());
            Thread.sleep(1);
        }
        launcher.destroy();
        Result result = slope.exitAfter("a second SIGTERM", KILL_BOUND);
        assertEquals(128 + 15, result.exitCode(), result.err());
        assertTrue(result.err().contains("slope train: SIGTERM: quitting now. Killed all 2 ranks. Resume from the last "
                + "committed checkpoint (step 0)"), result.err());
        for (ProcessHandle rank : ranks) {
            assertFalse(rank.isAlive(), "rank process " + rank.pid() + " outlived its launcher's quit");
        }
        assertEquals(0, committed(killed), "no checkpoint at the stop");
    }

    /** `slope train --ranks 2` of {@code spec}, once its ranks have trained {@code steps} steps. */
    private static Slope twoRanksSomeStepsIn(Path runDir, String spec, int steps) throws Exception {
        Slope slope = start("train", "--spec", dir.resolve(spec).toString(), "--out", runDir.toString(),
                "--ranks", "2");
        ranksOnceTraining(slope.process(), runDir);
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (losses(runDir).length < steps) {
            assertTrue(slope.process().isAlive() && System.nanoTime() < deadline, "no " + steps + " steps within "
                    + "60 s: " + slope.errSoFar());
            Thread.sleep(5);
        }
        return slope;
    }

    /**
     * The signalled launcher exits {@code exitCode} once both ranks stopped after the same step, the checkpoint
     * there committed; returns that step.
     */
    private static long assertStoppedAtOneStep(Slope slope, Path runDir, String signal, int exitCode)
            throws Exception {
        Result result = slope.exitAfter(signal, KILL_BOUND); // after every rank's exit: the launcher waits for each
        assertEquals(exitCode, result.exitCode(), result.err());
        assertTrue(result.err().contains("slope train: " + signal + ": stopping all 2 ranks after this step"),
                result.err());
        long step = committed(runDir);
        assertTrue(step > 0 && step < STOP_STEPS, "stopped mid-run, at step " + step);
        assertTrue(result.err().contains("slope train: stopped all 2 ranks after step " + step + " of " + STOP_STEPS
                + " (checkpoint committed); resume with: slope train --resume " + runDir.toAbsolutePath()
                + " --ranks 2"), result.err());
        assertEquals(step, losses(runDir).length, "rank 0 trained up to the checkpoint");
        assertTrue(Files.readString(runDir.resolve("rank-1.log")).contains("rank 1: stopped after step " + step
                + " of " + STOP_STEPS), "rank 1 stopped after the same step");
        return step;
    }

    @Test
    void ranksWhoseLauncherIsKilledOutrightStopThemselves() throws Exception {
        Path orphaned = dir.resolve("orphaned");
        Slope slope = startLongRunOnTwoRanks(orphaned);
        Process launcher = slope.process();
        List<ProcessHandle> ranks = ranksOnceTraining(launcher, orphaned);
        launcher.destroyForcibly().waitFor(); // SIGKILL: no shutdown hook runs
        for (ProcessHandle rank : ranks) {
            rank.onExit().get(KILL_BOUND.toSeconds(), TimeUnit.SECONDS);
        }
    }

    @Test
    void aRankCountThatDoesNotDivideGradAccumIsRefusedAndNothingIsWritten() throws Exception {
        Path out = dir.resolve("refused");
        Result three = slope("train", "--spec", dir.resolve("short.json").toString(), "--out", out.toString(),
                "--ranks", "3");
        assertEquals(2, three.exitCode(), three.err());
        assertTrue(three.err().contains("--ranks: 3 ranks cannot share training.gradAccum = 4 micro-batches per step"
                + " (rank r takes micro-batches r, r + 3, …); use --ranks 1, 2, 4, or set training.gradAccum in the spec to a "
                + "multiple of 3"), three.err());
        Result zero = slope("train", "--spec", dir.resolve("short.json").toString(), "--out", out.toString(),
                "--ranks", "0");
        assertEquals(2, zero.exitCode(), zero.err());
        assertTrue(zero.err().contains("--ranks: must be at least 1 (got 0)"), zero.err());
        assertFalse(Files.exists(out), "nothing written for a refused --ranks");
    }

    @Test
    void aBackendThatCannotRunHereIsRefusedBeforeAnyRankStarts() throws Exception {
        Files.writeString(dir.resolve("cuda.json"), Files.readString(dir.resolve("short.json"))
                .replace("\"backend\": \"cpu\", \"precision\": \"fp64\"", "\"backend\": \"cuda\""));
        String reason = Backends.unavailableReason(RunSpecs.resolve(
                RunSpecCodec.parse(Files.readString(dir.resolve("cuda.json"))))).orElse(null);
        assumeTrue(reason != null, "the CUDA backend can run on this machine");
        Path out = dir.resolve("no-cuda");
        Result refused = slope("train", "--spec", dir.resolve("cuda.json").toString(), "--out", out.toString(),
                "--ranks", "2");
        assertEquals(2, refused.exitCode(), refused.err());
        assertEquals(reason, refused.err().strip());
        assertFalse(Files.exists(out), "nothing written for an unavailable backend");
    }

    @Test
    void ranksThatCannotHoldTheCpuStateInTheirShareOfTheHeapAreRefusedAndNothingIsLeft() throws Exception {
        // ~0.41 GiB of CPU training state: fits this launcher's 1 GiB heap, not the 256 MiB that each of 4 ranks gets.
        Files.writeString(dir.resolve("big.json"), """
                {"name": "big", "model": {"layers": 2, "heads": 2, "dModel": 384, "seqLen": 64},
                 "training": {"steps": 4, "batchSize": 32, "gradAccum": 4, "seed": 3},
                 "data": {"corpus": ["corpus.txt"], "tokenizer": "char"}, "backend": "cpu", "precision": "fp64"}
                """);
        Path out = dir.resolve("big");
        Result four = slope("train", "--spec", dir.resolve("big.json").toString(), "--out", out.toString(),
                "--ranks", "4");
        assertEquals(2, four.exitCode(), four.err());
        assertTrue(four.err().startsWith("--ranks: each of 4 ranks gets 1/4 of the heap (256 MiB); "
                + "training.batchSize: CPU training state needs"), four.err());
        assertTrue(four.err().strip().endsWith("; or use fewer --ranks"), four.err());
        assertFalse(Files.exists(out), "a refused launch leaves no run folder");
    }

    /** `slope train --ranks 2` of the long spec into {@code runDir}, not waited for. */
    private static Slope startLongRunOnTwoRanks(Path runDir) throws IOException {
        return start("train", "--spec", dir.resolve("long.json").toString(), "--out", runDir.toString(), "--ranks",
                "2");
    }

    /** The launcher's two rank processes, once the run's step-0 checkpoint is committed. */
    private static List<ProcessHandle> ranksOnceTraining(Process launcher, Path runDir) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (committed(runDir) < 0 || launcher.toHandle().children().count() < 2) {
            assertTrue(launcher.isAlive() && System.nanoTime() < deadline, "no step-0 checkpoint within 60 s");
            Thread.sleep(10);
        }
        return launcher.toHandle().descendants().toList();
    }

    private static String run(String name) {
        return dir.resolve(name).toString();
    }

    private static Checkpoint finalCheckpoint(String name, int step) throws IOException {
        return checkpoint(dir.resolve(name), step);
    }

    private static Result slope(String... args) throws Exception {
        return SlopeProcesses.slope(dir, args);
    }

    private static Slope start(String... args) throws IOException {
        return SlopeProcesses.start(dir, args);
    }
}
