package io.slope.engine.model;

import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.util.Map;

/** Small configurations and random token data for tests. */
public final class TinyModels {
    private TinyModels() {}

    public static GptConfig config(Mode mode) {
        return new GptConfig(2, 2, 8, 5, 11, mode, NmPattern.twoFour(), true);
    }

    /** B·(T+1) token ids in [0, vocab) from a seed. */
    public static int[] randomWindows(int B, int T, int vocab, long seed) {
        int[] w = new int[B * (T + 1)];
        long stream = Philox.stream("test/tokens");
        for (int i = 0; i < w.length; i++) {
            w[i] = (int) Philox.uniformLong(seed, stream, i, vocab);
        }
        return w;
    }

    /**
     * Weights that look trained rather than freshly initialised: the seeded GPT-2 initialisation plus N(0, std²) on
     * every value, biases and LayerNorm parameters included, so that no parameter is zero, one or negligible and a
     * misplaced tensor changes the output.
     */
    public static Map<String, double[]> trainedLookingWeights(GptConfig config, long seed, double std) {
        Map<String, double[]> weights = GptModel.initialWeights(config, seed);
        weights.forEach((name, w) -> {
            long stream = Philox.stream("test/perturb/" + name);
            for (int i = 0; i < w.length; i++) {
                w[i] += std * Philox.normal(seed, stream, i);
            }
        });
        return weights;
    }

    /** Adapters for every sparse layer of {@code config} with every value N(0, std²): B nonzero, unlike fresh ones. */
    public static Map<String, double[]> randomAdapters(GptConfig config, int rank, long seed, double std) {
        Map<String, double[]> weights = GptModel.initialAdapterWeights(config, rank, seed);
        weights.forEach((name, w) -> {
            long stream = Philox.stream("test/adapter/" + name);
            for (int i = 0; i < w.length; i++) {
                w[i] = std * Philox.normal(seed, stream, i);
            }
        });
        return weights;
    }
}
