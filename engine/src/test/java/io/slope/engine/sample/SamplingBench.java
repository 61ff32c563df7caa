package io.slope.engine.sample;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.TinyModels;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import io.slope.spec.Preset;
import io.slope.spec.ResolvedSpec;
import java.util.Arrays;

/**
 * Sampling tokens/s on the CPU backend with the KV cache and with the whole window recomputed per token (a benchmark,
 * not a test): a model of the {@code mini} preset's shape (4 layers, 4 heads, d 128, T 128), 2:4 SLoPe with block 0's
 * qkv dense and rank-4 adapters, fp32, random weights; greedy, a 16-token prompt, {@code tokens} new tokens (inside
 * the context by default). Runs alternate between the two paths; the first of each is a JIT warm-up, not counted.
 * bench/sampling runs it.
 *
 * <p>Arguments: {@code [vocab=65,50257] [tokens=64] [runs=5] [threads=0 (all cores)]}.
 */
public final class SamplingBench {
    private static final int PROMPT = 16;
    private static final int RANK = 4;

    public static void main(String[] args) {
        int[] vocabs = Arrays.stream((args.length > 0 ? args[0] : "65,50257").split(",")).mapToInt(Integer::parseInt)
                .toArray();
        int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        int runs = args.length > 2 ? Integer.parseInt(args[2]) : 5;
        int threads = args.length > 3 ? Integer.parseInt(args[3]) : 0;
        ResolvedSpec.Model shape = Preset.MINI.model();
        try (CpuBackend backend = new CpuBackend(threads)) {
            System.out.printf("mini (%d layers, %d heads, d %d, T %d), slope 2:4 + rank-%d adapters, fp32, %s; "
                    + "greedy, prompt %d, %d new tokens; median of %d runs after a warm-up%n", shape.layers(),
                    shape.heads(), shape.dModel(), shape.seqLen(), RANK, backend.name(), PROMPT, tokens, runs);
            for (int vocab : vocabs) {
                GptConfig config = new GptConfig(shape.layers(), shape.heads(), shape.dModel(), shape.seqLen(), vocab,
                        Mode.SLOPE, NmPattern.twoFour(), true);
                try (GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32,
                        TinyModels.trainedLookingWeights(config, 1, 0.02))) {
                    model.attachAdapters(TinyModels.randomAdapters(config, RANK, 2, 0.02), RANK, 1.0 / RANK);
                    int[] prompt = Arrays.copyOf(TinyModels.randomWindows(1, PROMPT, vocab, 3), PROMPT);
                    measure(model, prompt, tokens, runs, vocab);
                }
            }
        }
    }

    private static void measure(GptModel model, int[] prompt, int tokens, int runs, int vocab) {
        Sampler cached = new Sampler(model, Sampler.Decoding.KV_CACHE);
        Sampler recomputing = new Sampler(model, Sampler.Decoding.RECOMPUTE);
        Sampler.Settings settings = Sampler.Settings.greedy(tokens);
        double[] withCache = new double[runs];
        double[] without = new double[runs];
        int[] expected = null;
        for (int run = -1; run < runs; run++) {
            for (Sampler sampler : new Sampler[] {cached, recomputing}) {
                long start = System.nanoTime();
                int[] out = sampler.generate(prompt, settings, t -> { });
                double perSecond = tokens / ((System.nanoTime() - start) / 1e9);
                if (expected == null) {
                    expected = out;
                } else if (!Arrays.equals(expected, out)) {
                    throw new IllegalStateException("the two paths chose different tokens");
                }
                if (run >= 0) {
                    (sampler == cached ? withCache : without)[run] = perSecond;
                }
            }
        }
        System.out.printf("vocab %5d: KV cache %8.1f tokens/s, recompute %7.2f tokens/s, speedup %.1fx"
                + "   (runs: cache %s, recompute %s)%n", vocab, median(withCache), median(without),
                median(withCache) / median(without), format(withCache), format(without));
    }

    private static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static String format(double[] xs) {
        StringBuilder b = new StringBuilder("[");
        for (double x : xs) {
            b.append(b.length() > 1 ? ", " : "").append(String.format("%.1f", x));
        }
        return b.append(']').toString();
    }
}
