package io.slope.engine.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptModel;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Finding a checkpoint and the tokenizer from a run folder or a checkpoint folder, and the errors otherwise. */
class TrainedModelTest {
    private static final int STEPS = 3;
    private static final String SPEC = """
            {"name": "tiny", "model": {"layers": 1, "heads": 2, "dModel": 16, "seqLen": 8},
             "sparsity": {"mode": "slope"}, "optimizer": {"lr": 0.01, "warmupSteps": 1},
             "training": {"steps": %d, "batchSize": 2, "seed": 3},
             "data": {"corpus": ["corpus.txt"], "tokenizer": "char"}, "eval": {"every": 0, "maxWindows": 2},
             "backend": "cpu", "threads": 1}
            """.formatted(STEPS);

    @TempDir
    static Path dir;
    static Path run;
    static ResolvedSpec spec;

    @BeforeAll
    static void train() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "to be or not to be, that is the question.\n".repeat(40));
        spec = RunSpecCodec.parseResolved(SPEC);
        run = dir.resolve("run");
        LocalTrainingRun.start(spec, dir, run, ResumeProbe.QUIET);
    }

    @Test
    void runFolderGivesTheNewestCheckpointAndTheRunsTokenizer() throws Exception {
        try (CpuBackend backend = new CpuBackend(1);
                TrainedModel trained = TrainedModel.load(run, backend)) {
            assertEquals(STEPS, trained.step());
            assertEquals(new LocalCheckpointStore(run).checkpointDirectory(STEPS), trained.checkpointDirectory());
            assertEquals("char", trained.tokenizer().kind());
            assertEquals("to be", trained.tokenizer().decode(trained.tokenizer().encode("to be")));
            assertEquals(trained.tokenizer().vocabSize(), trained.model().config().vocab());
        }
    }

    /**
     * Asked for the inference form, a checkpoint with adapters gives the model Merge.inferenceForm builds from the
     * trained one (the same logits bit for bit), which is not the trained model's function (A pruned 2:4).
     */
    @Test
    void theInferenceFormIsMergesInferenceFormOfTheTrainedModel() throws Exception {
        try (CpuBackend backend = new CpuBackend(1);
                TrainedModel trained = TrainedModel.load(run, backend);
                TrainedModel served = TrainedModel.load(run, backend, TrainedModel.Form.INFERENCE)) {
            GptModel model = trained.model();
            assertTrue(model.adapterRank() > 0, "the run ends in its adapter phase");
            assertEquals(TrainedModel.Form.TRAINED, trained.form());
            assertEquals(TrainedModel.Form.INFERENCE, served.form());
            int[] inputs = trained.tokenizer().encode("to be or not to ");
            int[] targets = trained.tokenizer().encode("o be or not to b");
            int b = inputs.length / model.config().seqLen();
            try (GptModel expected = GptModel.restore(backend, model.config(), model.dtype(),
                    Merge.inferenceForm(model.config(), model.snapshot()), GptModel.Use.INFERENCE)) {
                expected.forward(inputs, targets, b);
                served.model().forward(inputs, targets, b);
                model.forward(inputs, targets, b);
                assertArrayEquals(expected.logits(b), served.model().logits(b));
                assertFalse(Arrays.equals(model.logits(b), served.model().logits(b)), "the trained model's logits");
            }
        }
    }

    @Test
    void checkpointFolderGivesThatCheckpoint() throws Exception {
        try (CpuBackend backend = new CpuBackend(1);
                TrainedModel trained = TrainedModel.load(run.resolve("checkpoints").resolve("0000000000"), backend);
                GptModel initial = GptModel.fromDenseWeights(backend, trained.model().config(), DType.F32,
                        GptModel.initialWeights(trained.model().config(), spec.training().seed()))) {
            assertEquals(0, trained.step());
            Map<String, double[]> expected = initial.denseWeights();
            trained.model().denseWeights().forEach((name, w) -> assertArrayEquals(expected.get(name), w, name));
        }
    }

    @Test
    void errorsNameTheFlagAndSayWhatIsExpected() throws Exception {
        try (CpuBackend backend = new CpuBackend(1)) {
            var missing = assertThrows(IllegalArgumentException.class,
                    () -> TrainedModel.load(dir.resolve("nowhere"), backend));
            assertTrue(missing.getMessage().startsWith("--checkpoint: ") && missing.getMessage().contains("nowhere"),
                    missing.getMessage());

            var neither = assertThrows(IllegalArgumentException.class,
                    () -> TrainedModel.load(run.resolve("dataset"), backend));
            assertTrue(neither.getMessage().contains("neither a run folder"), neither.getMessage());

            Path uncommitted = run.resolve("checkpoints").resolve("0000000099");
            Files.createDirectories(uncommitted);
            var notCommitted = assertThrows(IllegalArgumentException.class,
                    () -> TrainedModel.load(uncommitted, backend));
            assertTrue(notCommitted.getMessage().contains("not a committed checkpoint"), notCommitted.getMessage());
            Files.delete(uncommitted);
        }
    }
}
