package io.slope.cuda;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.TinyModels;
import io.slope.engine.parallel.Collective;
import io.slope.engine.train.Trainer;
import io.slope.engine.train.Windows;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A batch too large for the card (issue 14): a narrow model (d = 128, T = 1024) at 2048 sequences per micro-batch, as
 * deep as it takes for its activations to need about twice the device's free memory (cuMemGetInfo), runs one Trainer
 * step in bf16. The step must run out of memory, split each micro-batch into smaller passes and say so, and its loss
 * must equal the loss of the same windows run directly at that pass size within the bf16 model-step bound of
 * {@link ModelStepParityTest} (1e-2). Dense layers: the subject is memory, not cuSPARSELt at two million rows.
 */
class GpuOutOfMemoryTest {
    private static final int SEQUENCES = 2048;
    private static final int T = 1024;
    private static final int D_MODEL = 128;
    private static final int HEADS = 2;
    private static final int VOCAB = 128;
    private static final long SEED = 14;

    @Test
    void aBatchTooLargeForTheCardRunsInSmallerPassesWithTheLossOfThoseRunDirectly() {
        GpuBackends.get(CudaBackend.Precision.BF16);
        int[] windows = TinyModels.randomWindows(SEQUENCES, T, VOCAB, SEED);
        List<String> said = new ArrayList<>();
        GptConfig config;
        Map<String, double[]> init;
        Trainer.StepStats stats;
        // Backends of their own, closed after each run, so that the memory filled here goes back: the direct run
        // gets the device the step had, and the other tests get it after.
        try (CudaBackend gpu = new CudaBackend(0, CudaBackend.Precision.BF16)) {
            long free = gpu.memoryInfo()[0];
            int layers = (int) Math.max(2, Math.ceil((2.0 * free / ((long) SEQUENCES * T)
                    - bytesPerRowOutsideLayers()) / bytesPerRowPerLayer()));
            ResolvedSpec spec = RunSpecCodec.parseResolved("""
                    {"model": {"layers": %d, "heads": %d, "dModel": %d, "seqLen": %d},
                     "sparsity": {"mode": "dense"},
                     "training": {"steps": 1, "batchSize": %d, "gradAccum": 1, "seed": %d},
                     "data": {"corpus": ["unused.txt"]}, "backend": "cuda", "precision": "fp32"}
                    """.formatted(layers, HEADS, D_MODEL, T, SEQUENCES, SEED));
            config = GptConfig.of(spec, VOCAB);
            init = GptModel.initialWeights(config, SEED);
            try (GptModel model = GptModel.fromDenseWeights(gpu, config, DType.F32, init)) {
                Trainer trainer = new Trainer(model, spec, (step, micro) -> windows, Collective.single(), said::add);
                stats = trainer.step(0);
            }
            System.out.printf("out of memory: %d layers, %.1f GiB free at the start; %s%n", layers,
                    free / (double) (1L << 30), said);
        }
        int pass = stats.sequencesPerPass();
        assertTrue(pass < SEQUENCES && SEQUENCES % pass == 0, "split into equal passes: " + pass);
        assertEquals(1, said.size(), "said once: " + said);
        assertTrue(said.get(0).startsWith("step 0: out of GPU memory at " + SEQUENCES + " sequences × " + T
                + " tokens in one pass"), said.get(0));

        double direct = 0;
        try (CudaBackend gpu = new CudaBackend(0, CudaBackend.Precision.BF16);
                GptModel model = GptModel.fromDenseWeights(gpu, config, DType.F32, init)) {
            for (int first = 0; first < SEQUENCES; first += pass) {
                int[] part = Windows.sequences(windows, T, first, pass);
                model.forward(Windows.inputs(part, T), Windows.targets(part, T), pass);
                direct += model.meanLoss(pass);
            }
        }
        direct /= SEQUENCES / pass;
        double error = relativeError(new double[] {stats.loss()}, new double[] {direct});
        System.out.printf("out of memory: step loss %.6f in %d × %d sequences, run directly %.6f, relative error "
                + "%.2e (bound 1e-2)%n", stats.loss(), SEQUENCES / pass, pass, direct, error);
        assertTrue(error <= 1e-2, "step loss " + stats.loss() + " vs " + direct + " run directly: " + error);
    }

    /**
     * What one row (token) of a micro-batch takes in each block, in the bf16 mode: 18·C bf16 activations (LayerNorm
     * outputs, qkv, attention output and projection, residuals, MLP), four fp32 row statistics and the attention's
     * log-sum-exp and D per head. An estimate for sizing the model, not an accounting.
     */
    private static long bytesPerRowPerLayer() {
        return 18L * D_MODEL * 2 + 4 * 4 + 2L * HEADS * 4;
    }

    /** Outside the blocks: embeddings, final LayerNorm, logits, the shared backward scratch (14·C), ids and losses. */
    private static long bytesPerRowOutsideLayers() {
        return 2L * D_MODEL * 2 + 2L * VOCAB + 14L * D_MODEL * 2 + 3 * 4 + 2 * 4;
    }
}
