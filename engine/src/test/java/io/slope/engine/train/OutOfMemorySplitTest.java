package io.slope.engine.train;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.OutOfDeviceMemory;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.engine.parallel.Collective;
import io.slope.spec.MemoryEstimate;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A step that runs out of device memory at {@code training.batchSize} sequences starts over in smaller passes with the
 * same tokens, loss and update, keeps them, and says so once; one sequence that does not fit is an error naming what
 * to lower. The device is a {@link BoundedMemoryBackend} (a CPU backend with a memory budget), in fp64, so "the same"
 * is within fp64 rounding.
 */
class OutOfMemorySplitTest {
    private static final int BATCH = 4;
    private static final int STEPS = 3;
    private static final int VOCAB = 13;

    @ParameterizedTest
    @ValueSource(ints = {2, 1})
    void aStepOutOfMemoryRunsInSmallerPassesWithTheLossAndUpdateOfTheWholeStep(int fittingPass) {
        // A budget between the footprints of passes of fittingPass and of twice as many sequences.
        long budget = (footprint(fittingPass).peak() + footprint(2 * fittingPass).peak()) / 2;
        List<String> said = new ArrayList<>();
        try (CpuBackend reference = new CpuBackend(2);
                BoundedMemoryBackend bounded = new BoundedMemoryBackend(new CpuBackend(2))) {
            bounded.budget(budget);
            Run unconstrained = new Run(reference, BATCH, line -> { });
            Run split = new Run(bounded, BATCH, said::add);
            for (int step = 0; step < STEPS; step++) {
                Trainer.StepStats whole = unconstrained.trainer.step(step);
                int failuresBefore = bounded.failures();
                Trainer.StepStats passes = split.trainer.step(step);
                assertTrue(step == 0 ? bounded.failures() > 0 : bounded.failures() == failuresBefore,
                        "out of memory at step 0 only, then the smaller passes stay (step " + step + ")");
                assertEquals(BATCH, whole.sequencesPerPass());
                assertEquals(fittingPass, passes.sequencesPerPass(), "step " + step);
                assertEquals(whole.tokens(), passes.tokens(), "the same tokens per step");
                double lossError = relativeError(new double[] {passes.loss()}, new double[] {whole.loss()});
                assertTrue(lossError <= 1e-12, "loss of step " + step + ": " + passes.loss() + " vs " + whole.loss()
                        + ", relative error " + lossError);
                double normError = relativeError(new double[] {passes.gradNorm()}, new double[] {whole.gradNorm()});
                assertTrue(normError <= 1e-12, "gradient norm of step " + step + ": relative error " + normError);
                List<Parameter> expected = unconstrained.model.parameters();
                List<Parameter> actual = split.model.parameters();
                for (int i = 0; i < expected.size(); i++) {
                    double error = relativeError(bounded.download(actual.get(i).value()),
                            reference.download(expected.get(i).value()));
                    assertTrue(error <= 1e-12, expected.get(i).name() + " after step " + step + ": relative error "
                            + error);
                }
            }
            assertEquals(1, said.size(), "said once: " + said);
        }
    }

    @Test
    void saysOnceInWordsThatEachMicroBatchRunsInSmallerPasses() {
        long budget = (footprint(2).peak() + footprint(BATCH).peak()) / 2;
        List<String> said = new ArrayList<>();
        try (BoundedMemoryBackend bounded = new BoundedMemoryBackend(new CpuBackend(2))) {
            bounded.budget(budget);
            Run run = new Run(bounded, BATCH, said::add);
            run.trainer.step(0);
            run.trainer.step(1);
            OutOfDeviceMemory failure = bounded.firstFailure();
            assertEquals(List.of("step 0: out of GPU memory at 4 sequences × 8 tokens in one pass ("
                    + MemoryEstimate.gib(failure.requestedBytes()) + " GiB requested, "
                    + MemoryEstimate.gib(failure.freeBytes()) + " GiB free): running each micro-batch as 2 × 2 "
                    + "sequences from now on; the same tokens per step"), said);
        }
    }

    @Test
    void oneSequenceThatDoesNotFitIsAnErrorNamingTheModelFieldsAndTheMemory() {
        Footprint one = footprint(1);
        List<String> said = new ArrayList<>();
        try (BoundedMemoryBackend bounded = new BoundedMemoryBackend(new CpuBackend(2))) {
            Run run = new Run(bounded, BATCH, said::add);
            // The model and its optimizer fit; half of one sequence's activations on top of them does.
            bounded.budget(bounded.liveBytes() + (one.peak() - one.model()) / 2);
            OutOfDeviceMemory e = assertThrows(OutOfDeviceMemory.class, () -> run.trainer.step(0));
            OutOfDeviceMemory last = (OutOfDeviceMemory) e.getCause();
            assertEquals("out of GPU memory even at 1 sequence × 8 tokens in one pass ("
                    + MemoryEstimate.gib(last.requestedBytes()) + " GiB requested, "
                    + MemoryEstimate.gib(last.freeBytes()) + " GiB free): the model does not fit this device; lower "
                    + "model.seqLen (8), model.dModel (16) or model.layers (2)", e.getMessage());
            assertEquals(last.requestedBytes(), e.requestedBytes());
            assertEquals(last.freeBytes(), e.freeBytes());
            assertEquals(List.of(), said, "nothing said about smaller passes that never ran");
        }
    }

    @Test
    void passesDivideTheMicroBatchEvenly() {
        assertEquals(8, Trainer.smallerPass(16, 16));
        assertEquals(1, Trainer.smallerPass(16, 2));
        assertEquals(6, Trainer.smallerPass(12, 12));
        assertEquals(3, Trainer.smallerPass(12, 6));
        assertEquals(1, Trainer.smallerPass(12, 3), "no divisor of 12 between 1 and half of 3");
        assertEquals(1, Trainer.smallerPass(7, 7));
        assertEquals(0, Trainer.smallerPass(4, 1));
    }

    /** What the model and optimizer hold before a step, and the most held during STEPS steps at a batch size. */
    private record Footprint(long model, long peak) {}

    private static Footprint footprint(int batchSize) {
        try (BoundedMemoryBackend unlimited = new BoundedMemoryBackend(new CpuBackend(2))) {
            Run run = new Run(unlimited, batchSize, line -> { });
            long model = unlimited.liveBytes();
            for (int step = 0; step < STEPS; step++) {
                run.trainer.step(step);
            }
            return new Footprint(model, unlimited.peakBytes());
        }
    }

    /** A model from the same initial weights and a trainer over the same windows, on a backend. */
    private static final class Run {
        final GptModel model;
        final Trainer trainer;

        Run(Backend backend, int batchSize, Consumer<String> info) {
            ResolvedSpec spec = RunSpecCodec.parseResolved("""
                    {"model": {"layers": 2, "heads": 2, "dModel": 16, "seqLen": 8},
                     "sparsity": {"mode": "slope"}, "adapters": {"start": 1},
                     "optimizer": {"lr": 0.01, "weightDecay": 0.1},
                     "training": {"steps": %d, "batchSize": %d, "gradAccum": 2},
                     "data": {"corpus": ["unused"]}, "precision": "fp64"}
                    """.formatted(STEPS, batchSize));
            GptConfig config = GptConfig.of(spec, VOCAB);
            Map<String, double[]> init = GptModel.initialWeights(config, 5);
            model = GptModel.fromDenseWeights(backend, config, DType.F64, init);
            trainer = new Trainer(model, spec, (step, micro) -> TinyModels.randomWindows(batchSize, config.seqLen(),
                    VOCAB, 100L * step + micro), Collective.single(), info);
        }
    }
}
