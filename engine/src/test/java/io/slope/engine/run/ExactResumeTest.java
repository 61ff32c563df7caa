package io.slope.engine.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.rng.Philox;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Interrupted and resumed in a fresh JVM equals uninterrupted, bit for bit (docs/architecture.md §3): every tensor of the
 * final checkpoint (weights, moments, row and column masks) and the state. The pause lands between periodic
 * checkpoints (every 3 steps) and before a column-mask refresh (every 2 steps), in the sparse phase (step 5) or in the
 * adapter phase (step 8; adapters join at step 7); "lost" deletes the pause checkpoint, as a crash would, so the run
 * resumes from the older periodic one.
 */
class ExactResumeTest {
    private static final int STEPS = 10;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, paused after step {1}, pause checkpoint lost: {2}")
    @CsvSource({"dense,5,false", "sparse-no-double-prune,5,false", "slope,5,false", "slope,5,true", "slope,8,false",
        "sparse-no-double-prune,8,true"})
    void interruptedAndResumedInAFreshJvmEqualsStraight(String mode, int pauseAt, boolean pauseCheckpointLost)
            throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.writeString(corpus, randomText(30_000));
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"name": "resume", "model": {"layers": 2, "heads": 2, "dModel": 32, "seqLen": 16},
                 "sparsity": {"mode": "%s", "columnMaskRefresh": 2}, "adapters": {"start": 0.7, "rank": 4},
                 "optimizer": {"lr": 0.01, "warmupSteps": 2},
                 "training": {"steps": %d, "batchSize": 2, "gradAccum": 2, "seed": 4},
                 "data": {"corpus": ["corpus.txt"]}, "eval": {"every": 0, "maxWindows": 4},
                 "checkpointEvery": 3, "backend": "cpu", "threads": 2}
                """.formatted(Mode.fromWire(mode).wireName(), STEPS));

        Path straight = dir.resolve("straight");
        LocalTrainingRun.start(spec, dir, straight, ResumeProbe.QUIET);

        Path interrupted = dir.resolve("interrupted");
        LocalTrainingRun.start(spec, dir, interrupted, ResumeProbe.QUIET, pauseAt);
        LocalCheckpointStore store = new LocalCheckpointStore(interrupted);
        assertEquals(pauseAt, store.committedSteps().getLast());
        if (pauseCheckpointLost) {
            store.delete(pauseAt);
        }
        resumeInFreshJvm(interrupted);

        Checkpoint a = new LocalCheckpointStore(straight).load(STEPS).checkpoint();
        Checkpoint b = store.load(STEPS).checkpoint();
        assertEquals(a.state(), b.state());
        assertEquals(mode.equals("dense") ? 0 : 4, b.state().get("adapterRank").asInt(), "adapters in the final state");
        assertEquals(a.tensors().size(), b.tensors().size());
        for (NamedTensor expected : a.tensors()) {
            NamedTensor actual = b.tensor(expected.name());
            assertArrayEquals(expected.data(), actual.data(), mode + ": " + expected.name() + " differs after resume");
        }
    }

    private static void resumeInFreshJvm(Path runDir) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                ResumeProbe.class.getName(), runDir.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("the resumed run did not finish");
        }
        assertEquals(0, p.exitValue(), out);
    }

    private static String randomText(int n) {
        String alphabet = "abcdefghij klmnop\nqrs.";
        StringBuilder sb = new StringBuilder(n);
        long stream = Philox.stream("test/resume-corpus");
        for (int i = 0; i < n; i++) {
            sb.append(alphabet.charAt((int) Philox.uniformLong(1, stream, i, alphabet.length())));
        }
        return sb.toString();
    }
}
