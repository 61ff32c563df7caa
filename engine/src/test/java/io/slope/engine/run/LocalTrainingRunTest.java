package io.slope.engine.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizer;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A whole local run through every stage: sparse phase, adapter phase, merge and the four evaluations. */
class LocalTrainingRunTest {
    private static final int STEPS = 12;

    @TempDir
    Path dir;

    /**
     * An unstarted run's folder goes whole, with nothing left beside it, even while another thread keeps adding files
     * to it (a signal's handler removes it while the data is still being tokenized into it); a folder that was there
     * before the run is kept.
     */
    @Test
    void anUnstartedRunsFolderIsRemovedWhileAThreadStillWritesIntoIt() throws Exception {
        Path parent = Files.createDirectories(dir.resolve("unstarted"));
        Path runDir = parent.resolve("run");
        Path dataset = Files.createDirectories(runDir.resolve("dataset"));
        AtomicInteger written = new AtomicInteger();
        Thread writer = Thread.ofPlatform().start(() -> {
            try {
                while (true) {
                    Files.writeString(dataset.resolve("shard-" + written.getAndIncrement()), "tokens");
                }
            } catch (java.io.IOException folderGone) {
                // the run's folder is gone: what the preparing thread meets too
            }
        });
        while (written.get() < 100) {
            Thread.sleep(1);
        }
        LocalTrainingRun.deleteIfUnstarted(runDir, true);
        writer.join();
        assertFalse(Files.exists(runDir), "the run's folder is gone");
        try (var left = Files.list(parent)) {
            assertEquals(0, left.count(), "nothing is left beside it");
        }

        Files.createDirectories(runDir);
        LocalTrainingRun.deleteIfUnstarted(runDir, false);
        assertTrue(Files.exists(runDir), "a folder that was there before is kept");
    }

    @Test
    void slopeRunReportsEveryFormAndTheDenseExportMatchesTheTrainedModel() throws Exception {
        LocalTrainingRun.Summary s = run("slope", 0.75);
        assertNotEquals(s.valLossSparse(), s.valLossAdapters(), "the adapter phase trained 3 more steps");
        assertTrue(Math.abs(s.valLossMerged() - s.valLossAdapters()) < 1e-4,
                "dense export " + s.valLossMerged() + " vs trained " + s.valLossAdapters());
        assertTrue(Double.isFinite(s.valLossInferenceForm()));
        assertNotEquals(s.valLossAdapters(), s.valLossInferenceForm(), "pruning A changes the function");

        Checkpoint last = new LocalCheckpointStore(Path.of(s.runDir())).load(STEPS).checkpoint();
        assertEquals(STEPS, last.state().get("adamSteps").asLong());
        assertEquals(3, last.state().get("adapterAdamSteps").asLong(), "adapters count their own steps from 1");
        assertEquals(s.valLossSparse(), last.state().get("valLossSparse").asDouble());
        assertTrue(Files.isRegularFile(Path.of(s.hfExport(), "model.safetensors")));
        assertTrue(Files.isRegularFile(Path.of(s.slopeExport(), "manifest.json")));
    }

    @Test
    void aRunStoppedBeforeItsExportsResumesIntoThemAndAFinishedOneIsRefused() throws Exception {
        LocalTrainingRun.Summary first = run("slope", 0.75);
        Path runDir = Path.of(first.runDir());
        DurableFiles.deleteRecursively(Path.of(first.hfExport()));
        LocalTrainingRun.Summary resumed = LocalTrainingRun.resume(runDir, ResumeProbe.QUIET);
        assertEquals(first.valLossMerged(), resumed.valLossMerged());
        assertEquals(0, resumed.trainTokens(), "no step left to train");
        assertNull(resumed.trainLoss(), "no step, no loss");
        assertTrue(Files.isRegularFile(Path.of(resumed.hfExport(), "model.safetensors")));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LocalTrainingRun.resume(runDir, ResumeProbe.QUIET));
        assertTrue(e.getMessage().contains("already finished"), e.getMessage());
    }

    @Test
    void aStopRequestStopsAfterThatStepWithACheckpointAndLeavesTheExportsToAResume() throws Exception {
        AtomicInteger asked = new AtomicInteger();
        int[] ended = {-1};
        LocalTrainingRun.Stop stop = new LocalTrainingRun.Stop() {
            @Override
            public boolean requested() {
                return asked.incrementAndGet() >= 5; // asked after each step: the 5th says stop
            }

            @Override
            public void trainingEnded(int stepsDone, int totalSteps) {
                ended[0] = stepsDone;
            }
        };
        Path runDir = dir.resolve("stopped");
        LocalTrainingRun.Summary stopped = LocalTrainingRun.start(spec("slope", 0.75), dir, runDir, ResumeProbe.QUIET,
                stop);
        assertFalse(stopped.finished());
        assertEquals(5, ended[0]);
        assertEquals(5L, new LocalCheckpointStore(runDir).committedSteps().getLast(), "a checkpoint where it stopped");
        assertFalse(Files.exists(runDir.resolve(LocalTrainingRun.HF_EXPORT_DIR)));
        LocalTrainingRun.Summary resumed = LocalTrainingRun.resume(runDir, ResumeProbe.QUIET);
        assertTrue(resumed.finished());
        assertEquals(run("slope", 0.75).valLossAdapters(), resumed.valLossAdapters(), "exact resume");
    }

    @Test
    void denseRunHasNoAdapterPhaseAndOneModel() throws Exception {
        LocalTrainingRun.Summary s = run("dense", 0.75);
        assertEquals(s.valLossAdapters(), s.valLossSparse());
        assertEquals(s.valLossAdapters(), s.valLossMerged());
        assertEquals(s.valLossAdapters(), s.valLossInferenceForm());
    }

    @Test
    void aRunThatFailsBeforeItsFirstCheckpointLeavesNoFolderBehind() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "tiny corpus");
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"name": "too-short", "model": {"layers": 1, "heads": 1, "dModel": 8, "seqLen": 64},
                 "training": {"steps": 2, "batchSize": 1}, "data": {"corpus": ["corpus.txt"]}, "backend": "cpu"}
                """);
        Path out = dir.resolve("out");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LocalTrainingRun.start(spec, dir, out, ResumeProbe.QUIET));
        assertTrue(e.getMessage().startsWith("data"), e.getMessage());
        assertFalse(Files.exists(out), "the failed run's folder is gone, so the same --out works next time");
    }

    @Test
    void heldOutFilesAreExactlyTheValidationTokensAndNoneOfThemTrains() throws Exception {
        Path books = Files.createDirectories(dir.resolve("books"));
        Files.writeString(books.resolve("1.txt"), "To be, or not to be, that is the question. ".repeat(200));
        Files.writeString(books.resolve("2.txt"), "Whether 'tis nobler in the mind to suffer ".repeat(200));
        Path heldOut = Files.createDirectories(dir.resolve("held-out"));
        Files.writeString(heldOut.resolve("3.txt"), "The slings and arrows of outrageous fortune, ".repeat(20));
        Files.writeString(heldOut.resolve("4.txt"), "Or to take arms against a sea of troubles ".repeat(20));
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"name": "held-out", "model": {"layers": 1, "heads": 2, "dModel": 16, "seqLen": 16},
                 "training": {"steps": 3, "batchSize": 2, "seed": 1},
                 "data": {"corpus": ["books"], "validation": ["held-out"]}, "eval": {"every": 0},
                 "checkpointEvery": 0, "backend": "cpu", "threads": 2}
                """);

        LocalTrainingRun.Summary s = LocalTrainingRun.start(spec, dir, dir.resolve("run"), ResumeProbe.QUIET);

        try (Dataset dataset = Dataset.open(Path.of(s.runDir(), LocalTrainingRun.DATASET_DIR))) {
            Tokenizer tokenizer = dataset.tokenizer();
            assertEquals(Files.readString(books.resolve("1.txt")) + "\n\n" + Files.readString(books.resolve("2.txt")),
                    tokenizer.decode(dataset.train().read(0, (int) dataset.train().length())));
            assertEquals(Files.readString(heldOut.resolve("3.txt")) + "\n\n"
                    + Files.readString(heldOut.resolve("4.txt")),
                    tokenizer.decode(dataset.validation().read(0, (int) dataset.validation().length())));
        }
        assertTrue(Double.isFinite(s.valLossAdapters()));
        assertEquals(spec, LocalTrainingRun.spec(Path.of(s.runDir())), "the stored spec keeps data.validation");
    }

    @Test
    void aHeldOutFileInsideACorpusFolderIsRefusedNamingTheField() throws Exception {
        Path books = Files.createDirectories(dir.resolve("books"));
        Files.writeString(books.resolve("1.txt"), "To be, or not to be, that is the question. ".repeat(200));
        Files.writeString(books.resolve("2.txt"), "Whether 'tis nobler in the mind to suffer ".repeat(200));
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"data": {"corpus": ["books"], "validation": ["books/2.txt"]}, "backend": "cpu"}
                """);
        Path out = dir.resolve("out");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LocalTrainingRun.start(spec, dir, out, ResumeProbe.QUIET));

        assertEquals("data.validation: the held-out file " + books.resolve("2.txt") + " is also read as training "
                + "text; list it among the held-out files only", e.getMessage());
        assertFalse(Files.exists(out));
    }

    private LocalTrainingRun.Summary run(String mode, double adapterStart) throws Exception {
        return LocalTrainingRun.start(spec(mode, adapterStart), dir, dir.resolve(mode), ResumeProbe.QUIET);
    }

    private ResolvedSpec spec(String mode, double adapterStart) throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.writeString(corpus, "To be, or not to be, that is the question. ".repeat(400));
        return RunSpecCodec.parseResolved("""
                {"name": "stages", "model": {"layers": 2, "heads": 2, "dModel": 32, "seqLen": 16},
                 "sparsity": {"mode": "%s"}, "adapters": {"start": %s, "rank": 4},
                 "optimizer": {"lr": 0.01, "warmupSteps": 2},
                 "training": {"steps": %d, "batchSize": 4, "gradAccum": 1, "seed": 1},
                 "data": {"corpus": ["corpus.txt"]}, "eval": {"every": 0, "maxWindows": 8},
                 "checkpointEvery": 0, "backend": "cpu", "threads": 2}
                """.formatted(mode, adapterStart, STEPS));
    }
}
