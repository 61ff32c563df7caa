package io.slope.engine.sample;

import io.slope.engine.model.GptModel;
import io.slope.engine.model.KvCache;
import io.slope.engine.rng.Philox;
import java.util.Arrays;
import java.util.Comparator;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Continues a token sequence with a {@link GptModel}: greedy (top-k = 1) or top-k sampling with a temperature. Every
 * random draw comes from {@link Philox}, keyed by the seed and the generated token's position, so a seed reproduces
 * its text on any machine.
 *
 * <p>The model's forward works on a fixed length T = seqLen: the context (its last T tokens) is padded to T and the
 * logits are read at its last real position; causal attention keeps the padding out of them.
 *
 * <p>{@link Decoding#KV_CACHE} (the default where the backend supports it) runs that forward once over the prompt,
 * keeping every layer's keys and values, then one position per new token ({@link GptModel#decode}): O(layers·(d² +
 * p·d) + vocab·d) per token at position p instead of a whole window's O(T·(layers·(d² + T·d) + vocab·d)). Once the context is full, the window slides: the model's positions are
 * learned and absolute, so every cached key and value changes, and each further token recomputes the window of the
 * last T tokens (refilling the cache) exactly as {@link Decoding#RECOMPUTE} does. Both give the same logits, bit for
 * bit on the CPU backend, hence the same tokens.
 */
public final class Sampler {
    /** The Philox stream of the top-k draws: draw i (the i-th generated token) is uniform(seed, STREAM, i). */
    public static final long STREAM = Philox.stream("sample/top-k");
    /** Fills the positions after the context; any valid id does, since no real position attends to them. */
    private static final int PADDING = 0;

    private final GptModel model;
    private final Decoding decoding;

    /** How the logits of each new token are computed. */
    public enum Decoding {
        /** Keys and values of the positions seen are cached: one position per token until the context is full. */
        KV_CACHE,
        /** The whole context (its last seqLen tokens) is recomputed for every token. */
        RECOMPUTE
    }

    /** How to choose each token. {@code topK} 1 is greedy (temperature and seed then play no part). */
    public record Settings(int maxTokens, int topK, double temperature, long seed) {
        public Settings {
            if (maxTokens < 1) {
                throw new IllegalArgumentException("--max-tokens must be at least 1, got " + maxTokens);
            }
            if (topK < 1) {
                throw new IllegalArgumentException("--top-k must be at least 1 (1 = greedy), got " + topK);
            }
            if (!(temperature > 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("--temperature must be a positive number, got " + temperature);
            }
        }

        public static Settings greedy(int maxTokens) {
            return new Settings(maxTokens, 1, 1.0, 0);
        }
    }

    /** Decodes with the KV cache where the model's backend supports it, else by recomputing. */
    public Sampler(GptModel model) {
        this(model, model.backend().supportsKvCache() ? Decoding.KV_CACHE : Decoding.RECOMPUTE);
    }

    public Sampler(GptModel model, Decoding decoding) {
        if (decoding == Decoding.KV_CACHE && !model.backend().supportsKvCache()) {
            throw new IllegalArgumentException(model.backend().name() + " does not implement KV-cache decoding");
        }
        this.model = model;
        this.decoding = decoding;
    }

    public Decoding decoding() {
        return decoding;
    }

    /** The logits of the token that follows {@code context} (its last seqLen tokens are used), one per vocabulary id. */
    public double[] nextTokenLogits(int[] context) {
        return windowLogits(context, null);
    }

    /**
     * The batched forward over the last seqLen tokens of {@code context}, padded to seqLen, and the logits at its last
     * real position; with a cache, the forward also fills it ({@link GptModel#prefill}).
     */
    private double[] windowLogits(int[] context, KvCache cache) {
        if (context.length == 0) {
            throw new IllegalArgumentException("the context must hold at least one token");
        }
        int T = model.config().seqLen();
        int used = Math.min(context.length, T);
        int[] inputs = new int[T];
        Arrays.fill(inputs, PADDING);
        System.arraycopy(context, context.length - used, inputs, 0, used);
        if (cache == null) {
            model.forward(inputs, new int[T], 1); // targets unused: only the logits are read
        } else {
            model.prefill(cache, inputs, used);
        }
        int V = model.config().vocab();
        return Arrays.copyOfRange(model.logits(1), (used - 1) * V, used * V);
    }

    /**
     * Generates {@code settings.maxTokens()} tokens after {@code prompt}, handing each to {@code onToken} as soon as
     * it is chosen.
     */
    public int[] generate(int[] prompt, Settings settings, IntConsumer onToken) {
        int[] sequence = Arrays.copyOf(prompt, prompt.length + settings.maxTokens());
        KvCache cache = decoding == Decoding.KV_CACHE ? model.kvCache(1) : null;
        double[] logits = windowLogits(prompt, cache);
        for (int i = 0; i < settings.maxTokens(); i++) {
            if (i > 0) {
                int length = prompt.length + i;
                logits = cache == null || cache.full()
                        ? windowLogits(Arrays.copyOf(sequence, length), cache)
                        : model.decode(cache, new int[] {sequence[length - 1]});
            }
            int next = choose(logits, settings.topK(), settings.temperature(), settings.seed(), i);
            sequence[prompt.length + i] = next;
            onToken.accept(next);
        }
        return Arrays.copyOfRange(sequence, prompt.length, sequence.length);
    }

    /**
     * Draw {@code index} from {@code logits}: for k = 1 the largest logit; otherwise among the k largest, with
     * probabilities softmax(logit / temperature) renormalised over them, by inverting their cumulative distribution
     * at {@code Philox.uniform(seed, STREAM, index)}. Equal logits rank the lower id first.
     */
    public static int choose(double[] logits, int topK, double temperature, long seed, long index) {
        int[] top = topK(logits, topK);
        if (top.length == 1) {
            return top[0];
        }
        double max = logits[top[0]];
        double[] cumulative = new double[top.length];
        double sum = 0;
        for (int j = 0; j < top.length; j++) {
            sum += StrictMath.exp((logits[top[j]] - max) / temperature);
            cumulative[j] = sum;
        }
        double u = Philox.uniform(seed, STREAM, index) * sum;
        for (int j = 0; j < top.length; j++) {
            if (u < cumulative[j]) {
                return top[j];
            }
        }
        return top[top.length - 1]; // u·sum rounded up to sum
    }

    /** The ids of the k largest logits (at most all of them), largest first, the lower id first among equals. */
    public static int[] topK(double[] logits, int k) {
        if (k == 1) {
            int best = 0;
            for (int v = 1; v < logits.length; v++) {
                if (logits[v] > logits[best]) {
                    best = v;
                }
            }
            return new int[] {best};
        }
        Comparator<Integer> byLogitThenId = Comparator.<Integer>comparingDouble(v -> -logits[v])
                .thenComparingInt(v -> v);
        return IntStream.range(0, logits.length).boxed().sorted(byLogitThenId).limit(k).mapToInt(Integer::intValue)
                .toArray();
    }
}
