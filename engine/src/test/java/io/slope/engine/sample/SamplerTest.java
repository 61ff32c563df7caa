package io.slope.engine.sample;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.TinyModels;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Greedy and seeded top-k continuation, checked against the model's logits computed directly. */
class SamplerTest {
    private static final GptConfig CONFIG = new GptConfig(2, 2, 16, 8, 13, Mode.SLOPE, NmPattern.twoFour(), true);
    private static final int[] PROMPT = {3, 1, 4};
    /** Longer than seqLen, so the context slides past the model's window. */
    private static final int TOKENS = 12;

    private CpuBackend backend;
    private GptModel model;

    @BeforeEach
    void model() {
        backend = new CpuBackend(2);
        // Large weights give peaked, varied distributions, so a wrong position or window changes the choices.
        model = GptModel.fromDenseWeights(backend, CONFIG, DType.F32,
                TinyModels.trainedLookingWeights(CONFIG, 21, 0.5));
    }

    @AfterEach
    void close() {
        model.close();
        backend.close();
    }

    @Test
    void paddingAfterTheContextLeavesItsLogitsUnchanged() {
        int T = CONFIG.seqLen();
        int V = CONFIG.vocab();
        int[] inputs = new int[T];
        Arrays.fill(inputs, V - 1); // another filler than the sampler's
        System.arraycopy(PROMPT, 0, inputs, 0, PROMPT.length);
        model.forward(inputs, new int[T], 1);
        double[] direct = Arrays.copyOfRange(model.logits(1), (PROMPT.length - 1) * V, PROMPT.length * V);
        assertArrayEquals(direct, new Sampler(model).nextTokenLogits(PROMPT), "bit for bit");
    }

    @Test
    void greedyIsDeterministicAndFollowsTheArgmaxOfTheModelsLogits() {
        Sampler sampler = new Sampler(model);
        List<Integer> streamed = new ArrayList<>();
        int[] greedy = sampler.generate(PROMPT, Sampler.Settings.greedy(TOKENS), streamed::add);

        int[] expected = directly(logits -> {
            int best = 0;
            for (int v = 1; v < logits.length; v++) {
                best = logits[v] > logits[best] ? v : best;
            }
            return new int[] {best};
        }, greedy);
        assertArrayEquals(expected, greedy);
        assertEquals(Arrays.stream(greedy).boxed().toList(), streamed, "each token handed over as it is chosen");
        assertArrayEquals(greedy, sampler.generate(PROMPT, Sampler.Settings.greedy(TOKENS), t -> { }));
        assertTrue(Arrays.stream(greedy).distinct().count() > 1, "a model this varied does not repeat one token");
    }

    @Test
    void seededTopKIsReproducibleAndEmitsOnlyTokensAmongTheKLargestLogits() {
        int k = 3;
        Sampler sampler = new Sampler(model);
        Sampler.Settings settings = new Sampler.Settings(TOKENS, k, 1.0, 5);
        int[] sampled = sampler.generate(PROMPT, settings, t -> { });

        assertArrayEquals(sampled, sampler.generate(PROMPT, settings, t -> { }), "same seed, same text");
        int[] otherSeed = sampler.generate(PROMPT, new Sampler.Settings(TOKENS, k, 1.0, 6), t -> { });
        assertFalse(Arrays.equals(sampled, otherSeed), "another seed draws differently");
        int[] greedy = sampler.generate(PROMPT, Sampler.Settings.greedy(TOKENS), t -> { });
        assertFalse(Arrays.equals(sampled, greedy), "top-3 sampling is not greedy");

        int[][] allowed = new int[TOKENS][];
        int[] step = {0};
        directly(logits -> allowed[step[0]++] = topKByFullSort(logits, k), sampled);
        for (int i = 0; i < TOKENS; i++) {
            int token = sampled[i];
            assertTrue(Arrays.stream(allowed[i]).anyMatch(a -> a == token),
                    "token " + i + " = " + token + " is not among the top " + k + " " + Arrays.toString(allowed[i]));
        }
    }

    /**
     * The same tokens with the KV cache as with the whole window recomputed, greedy and seeded top-k, on a model with
     * nonzero adapters: 12 tokens after a 3-token prompt run 7 positions past the 8-token context, and a 10-token
     * prompt starts past it.
     */
    @Test
    void theKvCacheChoosesTheSameTokensAsRecomputingTheWindowPastTheContextToo() {
        int rank = 4;
        model.attachAdapters(TinyModels.randomAdapters(CONFIG, rank, 22, 0.3), rank, 1.0 / rank);
        Sampler cached = new Sampler(model);
        Sampler recomputing = new Sampler(model, Sampler.Decoding.RECOMPUTE);
        assertEquals(Sampler.Decoding.KV_CACHE, cached.decoding(), "the CPU backend decodes with the cache");
        int[] longPrompt = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
        for (int[] prompt : List.of(PROMPT, longPrompt)) {
            for (Sampler.Settings settings : List.of(Sampler.Settings.greedy(TOKENS),
                    new Sampler.Settings(TOKENS, 3, 1.0, 5), new Sampler.Settings(TOKENS, 4, 0.7, 6))) {
                List<Integer> streamed = new ArrayList<>();
                int[] withCache = cached.generate(prompt, settings, streamed::add);
                assertArrayEquals(recomputing.generate(prompt, settings, t -> { }), withCache,
                        Arrays.toString(prompt) + ", " + settings);
                assertEquals(Arrays.stream(withCache).boxed().toList(), streamed);
            }
        }
    }

    /**
     * Sampling inside the context: the cache computes one batched window for the prompt, then position + 1 attention
     * scores per layer, head and token; recomputing computes the whole causal window (T(T+1)/2 per layer and head)
     * for every token.
     */
    @Test
    void withTheKvCacheEachTokenAttendsOverItsPositionsOnly() {
        int T = CONFIG.seqLen();
        long heads = (long) CONFIG.layers() * CONFIG.heads(); // per layer
        int tokens = T - PROMPT.length + 1; // the last one is chosen from the logits of a full context
        long window = heads * T * (T + 1) / 2;

        long before = backend.attentionScores();
        new Sampler(model, Sampler.Decoding.RECOMPUTE).generate(PROMPT, Sampler.Settings.greedy(tokens), t -> { });
        assertEquals(tokens * window, backend.attentionScores() - before);

        before = backend.attentionScores();
        new Sampler(model, Sampler.Decoding.KV_CACHE).generate(PROMPT, Sampler.Settings.greedy(tokens), t -> { });
        long decoded = 0;
        for (int p = PROMPT.length; p < T; p++) {
            decoded += heads * (p + 1);
        }
        assertEquals(window + decoded, backend.attentionScores() - before);
    }

    @Test
    void topKDrawsFollowTheTemperedSoftmaxOfTheKLargestLogits() {
        double[] logits = {0.5, 2.0, -1.0, 1.0, 2.0, -3.0};
        int k = 3;
        double temperature = 0.7;
        int[] top = {1, 4, 3}; // 2.0 twice: the lower id ranks first
        assertArrayEquals(top, Sampler.topK(logits, k));

        double[] expected = new double[logits.length];
        double sum = 0;
        for (int id : top) {
            expected[id] = Math.exp(logits[id] / temperature);
            sum += expected[id];
        }
        int draws = 40_000;
        int[] counts = new int[logits.length];
        for (int i = 0; i < draws; i++) {
            counts[Sampler.choose(logits, k, temperature, 9, i)]++;
        }
        for (int id = 0; id < logits.length; id++) {
            double p = expected[id] / sum;
            double sigma = Math.sqrt(p * (1 - p) / draws);
            double frequency = counts[id] / (double) draws;
            // Five standard deviations: the draws are fixed by the seed, so this either always or never passes.
            assertTrue(Math.abs(frequency - p) <= 5 * sigma, "id " + id + ": frequency " + frequency + ", p " + p);
        }
    }

    @Test
    void settingsRefuseValuesThatMeanNothingNamingTheFlag() {
        var e = assertThrows(IllegalArgumentException.class, () -> new Sampler.Settings(10, 0, 1.0, 0));
        assertTrue(e.getMessage().startsWith("--top-k"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Sampler.Settings(10, 5, 0.0, 0));
        assertTrue(e.getMessage().startsWith("--temperature"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Sampler.Settings(0, 5, 1.0, 0));
        assertTrue(e.getMessage().startsWith("--max-tokens"), e.getMessage());
    }

    /**
     * Replays a generated continuation with the model's forward called here: at each step the context is the prompt
     * plus the tokens so far, cut to its last seqLen tokens and padded with another filler than the sampler's; hands
     * the logits at its last position to {@code expect}, and returns the first id of each answer.
     */
    private int[] directly(Function<double[], int[]> expect, int[] generated) {
        int T = CONFIG.seqLen();
        int V = CONFIG.vocab();
        int[] sequence = Arrays.copyOf(PROMPT, PROMPT.length + generated.length);
        System.arraycopy(generated, 0, sequence, PROMPT.length, generated.length);
        int[] chosen = new int[generated.length];
        for (int i = 0; i < generated.length; i++) {
            int end = PROMPT.length + i;
            int start = Math.max(0, end - T);
            int[] inputs = new int[T];
            Arrays.fill(inputs, V - 1);
            System.arraycopy(sequence, start, inputs, 0, end - start);
            model.forward(inputs, new int[T], 1);
            int last = end - start - 1;
            chosen[i] = expect.apply(Arrays.copyOfRange(model.logits(1), last * V, (last + 1) * V))[0];
        }
        return chosen;
    }

    /** The k largest logits' ids by sorting every id, independently of {@link Sampler#topK}. */
    private static int[] topKByFullSort(double[] logits, int k) {
        Integer[] ids = new Integer[logits.length];
        for (int v = 0; v < ids.length; v++) {
            ids[v] = v;
        }
        Arrays.sort(ids, (a, b) -> Double.compare(logits[b], logits[a]));
        return Arrays.stream(ids).limit(k).mapToInt(Integer::intValue).toArray();
    }
}
