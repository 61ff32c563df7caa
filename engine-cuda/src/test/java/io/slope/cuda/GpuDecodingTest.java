package io.slope.cuda;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.KvCache;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * KV-cache decoding on the GPU against the fp64 CPU reference, on a SLoPe model (2:4 layers, block 0's qkv dense) with
 * nonzero adapters: the prompt's logits through prefill and every decoded position's logits, one sequence and three
 * (the decoding steps' 2:4 layers on the few-rows kernel). Also the adapters in the inference form (A pruned 2:4 along
 * d_in, the scale in B) on a GPU model built for inference, whose adapted layers then run fused (on the 2:4 kernels:
 * one product over [W^R; Aᵀ] in the prefill, the few-rows kernel and X·A apart in a decoding step, and one
 * accumulate), against the CPU's training model. Bounds as the model step's forward
 * (ModelStepParityTest): 1e-5 in the fp32 debug mode, 1e-2 in bf16.
 */
class GpuDecodingTest {
    private static final GptConfig CONFIG = new GptConfig(2, 2, 128, 48, 96, Mode.SLOPE, NmPattern.twoFour(), true);
    private static final int RANK = 8;

    @ParameterizedTest
    @CsvSource({"FP32_DEBUG, 1, 1e-5, false", "FP32_DEBUG, 3, 1e-5, false", "BF16, 1, 1e-2, false",
        "BF16, 3, 1e-2, false", "FP32_DEBUG, 3, 1e-5, true", "BF16, 1, 1e-2, true", "BF16, 3, 1e-2, true"})
    void decodedLogitsMatchTheCpuAtEveryPosition(CudaBackend.Precision precision, int B, double bound,
            boolean inferenceForm) {
        CudaBackend gpu = GpuBackends.get(precision);
        long seed = System.nanoTime();
        Map<String, double[]> init = GptModel.initialWeights(CONFIG, seed);
        Map<String, double[]> adapters = adapters(CONFIG, RANK, seed, inferenceForm);
        double scale = inferenceForm ? 1.0 : 1.0 / RANK;
        int T = CONFIG.seqLen();
        int V = CONFIG.vocab();
        int[] tokens = new int[B * T];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = (int) Philox.uniformLong(seed, 2, i, V);
        }
        int promptLength = 5;
        int[] prompt = tokens.clone();
        for (int b = 0; b < B; b++) {
            Arrays.fill(prompt, b * T + promptLength, (b + 1) * T, V - 1);
        }
        try (CpuBackend cpu = new CpuBackend(2);
                GptModel g = GptModel.fromDenseWeights(gpu, CONFIG, DType.F32, init,
                        inferenceForm ? GptModel.Use.INFERENCE : GptModel.Use.TRAINING);
                GptModel c = GptModel.fromDenseWeights(cpu, CONFIG, DType.F64, init)) {
            g.attachAdapters(adapters, RANK, scale);
            c.attachAdapters(adapters, RANK, scale);
            KvCache gc = g.kvCache(B);
            KvCache cc = c.kvCache(B);
            g.prefill(gc, prompt, promptLength);
            c.prefill(cc, prompt, promptLength);
            String what = precision + ", B " + B + (inferenceForm ? ", inference form" : "") + ", seed " + seed;
            check("prefill logits, " + what, g.logits(B), c.logits(B), bound);
            double worst = 0;
            for (int p = promptLength; p < T; p++) {
                int[] next = new int[B];
                for (int b = 0; b < B; b++) {
                    next[b] = tokens[b * T + p];
                }
                worst = Math.max(worst, check("decoded position " + p + ", " + what, g.decode(gc, next),
                        c.decode(cc, next), bound));
            }
            System.out.printf("decode %-36s worst normwise error %.3e (bound %.0e)%n", what, worst, bound);
        }
    }

    /** Nonzero adapters; in the inference form A pruned 2:4 along d_in and the scale 1/r folded into B. */
    static Map<String, double[]> adapters(GptConfig config, int rank, long seed, boolean inferenceForm) {
        Map<String, double[]> adapters = GptModel.initialAdapterWeights(config, rank, seed);
        adapters.replaceAll((name, w) -> {
            for (int i = 0; i < w.length; i++) {
                w[i] = 0.1 * Philox.normal(seed, Philox.stream("test/adapter/" + name), i);
                if (inferenceForm && name.endsWith(".lora_B")) {
                    w[i] /= rank;
                }
            }
            return inferenceForm && name.endsWith(".lora_A") ? Merge.pruneAdapterA(w, rank, config.pattern()) : w;
        });
        return adapters;
    }

    private static double check(String what, double[] gpu, double[] cpu, double bound) {
        double err = relativeError(gpu, cpu);
        assertTrue(Arrays.stream(gpu).allMatch(Double::isFinite) && err <= bound,
                what + ": normwise error " + err + " > " + bound);
        return err;
    }
}
