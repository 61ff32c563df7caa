package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.engine.backend.DType;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.KvCache;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * KV-cache decoding recorded as a CUDA Graph and replayed ({@code SLOPE_CUDA_GRAPHS=1}, {@code Backend.repeat})
 * computes what eager decoding computes, bit for bit: from the same weights and prompt, twelve tokens per sequence
 * decoded with graphs on and off, the logits equal at every position (a replay that kept the recorded step's tokens or
 * position would differ). A dense model, and a SLoPe one (2:4 layers) with nonzero adapters both as trained (X·A kept
 * per layer) and in the inference form (the adapted layers fused); one sequence and three (the 2:4 layers on the
 * few-rows kernel, whose decode index the first, eager step builds).
 */
class RecordedDecodingTest {
    private static final int RANK = 8;
    private static final int PROMPT = 5;
    private static final int TOKENS = 12;
    /** CudaBackend.repeat runs a pass eagerly twice, then records it and replays it from the third call on. */
    private static final int EAGER_STEPS = 2;

    @ParameterizedTest
    @CsvSource({"DENSE, 1, false", "DENSE, 3, false", "SLOPE, 1, false", "SLOPE, 3, false", "SLOPE, 1, true",
        "SLOPE, 3, true"})
    void replayedDecodingComputesWhatTheEagerOneDoes(Mode mode, int B, boolean inferenceForm) {
        CudaBackend gpu = GpuBackends.get(CudaBackend.Precision.BF16);
        GptConfig config = new GptConfig(2, 2, 128, 64, 96, mode, NmPattern.twoFour(), true);
        double[] eager = decode(gpu, config, B, inferenceForm, false);
        long before = gpu.replays();
        double[] replayed = decode(gpu, config, B, inferenceForm, true);
        String what = mode + ", B " + B + (inferenceForm ? ", inference form" : "");
        assertEquals(TOKENS - EAGER_STEPS, gpu.replays() - before, what + ": steps replayed from the recording");
        assertArrayEquals(eager, replayed, what + ": the logits of " + TOKENS + " decoded positions");
    }

    /** The logits of every decoded position, in order. */
    private static double[] decode(CudaBackend gpu, GptConfig config, int B, boolean inferenceForm, boolean graphs) {
        gpu.recordRepeatedPasses(graphs);
        int T = config.seqLen();
        int V = config.vocab();
        List<Double> out = new ArrayList<>();
        try (GptModel model = GptModel.fromDenseWeights(gpu, config, DType.F32, GptModel.initialWeights(config, 7),
                inferenceForm ? GptModel.Use.INFERENCE : GptModel.Use.TRAINING)) {
            if (config.mode().sparse()) {
                model.attachAdapters(GpuDecodingTest.adapters(config, RANK, 7, inferenceForm), RANK,
                        inferenceForm ? 1.0 : 1.0 / RANK);
            }
            KvCache cache = model.kvCache(B);
            int[] prompt = new int[B * T];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (int) Philox.uniformLong(7, 0, i, V);
            }
            model.prefill(cache, prompt, PROMPT);
            for (int step = 0; step < TOKENS; step++) {
                int[] next = new int[B];
                for (int b = 0; b < B; b++) {
                    next[b] = (int) Philox.uniformLong(7, 1 + step, b, V);
                }
                for (double v : model.decode(cache, next)) {
                    out.add(v);
                }
            }
        } finally {
            gpu.recordRepeatedPasses(CudaBackend.GRAPHS_BY_DEFAULT);
        }
        return out.stream().mapToDouble(Double::doubleValue).toArray();
    }
}
