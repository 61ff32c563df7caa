package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Incremental decoding ({@link GptModel#prefill}, {@link GptModel#decode}) against the batched forward, on a model with
 * dense and 2:4 sparse layers (block 0's qkv dense) and nonzero adapters on the sparse ones.
 */
class KvCacheTest {
    /** 2 layers, 2 heads, d 16, a context of 40 positions, 13 ids. */
    private static final GptConfig CONFIG = new GptConfig(2, 2, 16, 40, 13, Mode.SLOPE, NmPattern.twoFour(), true);
    private static final int RANK = 4;
    private static final int B = 2;

    private static GptModel model(Backend backend, DType dtype) {
        GptModel model = GptModel.fromDenseWeights(backend, CONFIG, dtype,
                TinyModels.trainedLookingWeights(CONFIG, 31, 0.5));
        model.attachAdapters(TinyModels.randomAdapters(CONFIG, RANK, 32, 0.3), RANK, 1.0 / RANK);
        return model;
    }

    /**
     * Every position of two 40-token sequences: the logits of the prompt (through prefill) and of each token decoded
     * after it equal the batched forward's over the whole sequence bit for bit, in fp32 and fp64. They can: each
     * decoded position goes through the same kernels as the batched forward's row (every linear, LayerNorm, GELU and
     * residual is computed row by row, each sum in the same order whatever the row count), and attentionDecode runs
     * the same per-query loop as attentionForward over the same stored keys and values. Padding after the prefill is
     * another token than the sequence's, so a position that attended it would differ.
     */
    @ParameterizedTest
    @CsvSource({"F64, 1", "F64, 7", "F32, 7"})
    void decodedLogitsEqualTheBatchedForwardAtEveryPosition(DType dtype, int promptLength) {
        int T = CONFIG.seqLen();
        int V = CONFIG.vocab();
        try (CpuBackend backend = new CpuBackend(2); GptModel model = model(backend, dtype)) {
            int[] tokens = Arrays.copyOf(TinyModels.randomWindows(B, T, V, 4), B * T);
            model.forward(tokens, new int[B * T], B);
            double[] full = model.logits(B);

            KvCache cache = model.kvCache(B);
            int[] prompt = new int[B * T];
            Arrays.fill(prompt, V - 1);
            for (int b = 0; b < B; b++) {
                System.arraycopy(tokens, b * T, prompt, b * T, promptLength);
            }
            model.prefill(cache, prompt, promptLength);
            double[] prefilled = model.logits(B);
            for (int b = 0; b < B; b++) {
                for (int p = 0; p < promptLength; p++) {
                    assertArrayEquals(row(full, b * T + p, V), row(prefilled, b * T + p, V),
                            "sequence " + b + ", prompt position " + p);
                }
            }
            for (int p = promptLength; p < T; p++) {
                assertEquals(p, cache.length());
                double[] decoded = model.decode(cache, new int[] {tokens[p], tokens[T + p]});
                for (int b = 0; b < B; b++) {
                    assertArrayEquals(row(full, b * T + p, V), row(decoded, b, V),
                            "sequence " + b + ", decoded position " + p);
                }
            }
            assertTrue(cache.full());
            assertThrows(IllegalStateException.class, () -> model.decode(cache, new int[] {0, 0}));
        }
    }

    /**
     * The work of a decoding step in the sense that matters: attention computes position + 1 query·key scores per
     * sequence, layer and head (the new token against the cache), where the batched forward computes the T(T+1)/2 of the whole
     * causal window.
     */
    @Test
    void decodingAttendsOverTheCachedPositionsOnlyNotTheWholeWindow() {
        int T = CONFIG.seqLen();
        long heads = (long) CONFIG.layers() * CONFIG.heads(); // per layer
        try (CpuBackend backend = new CpuBackend(2); GptModel model = model(backend, DType.F64)) {
            KvCache cache = model.kvCache(B);
            long before = backend.attentionScores();
            model.prefill(cache, new int[B * T], 3);
            assertEquals(B * heads * T * (T + 1) / 2, backend.attentionScores() - before,
                    "the prefill is one batched forward");
            for (int p = 3; p < T; p++) {
                before = backend.attentionScores();
                model.decode(cache, new int[] {p % 13, (p * 7) % 13});
                assertEquals(B * heads * (p + 1), backend.attentionScores() - before, "position " + p);
            }
        }
    }

    @Test
    void aCacheMadeBeforeTheAdaptersWereAttachedIsRefused() {
        try (CpuBackend backend = new CpuBackend(1);
                GptModel model = GptModel.fromDenseWeights(backend, CONFIG, DType.F64,
                        TinyModels.trainedLookingWeights(CONFIG, 31, 0.5))) {
            KvCache cache = model.kvCache(1);
            model.attachAdapters(TinyModels.randomAdapters(CONFIG, RANK, 32, 0.3), RANK, 1.0 / RANK);
            assertThrows(IllegalStateException.class, () -> model.decode(cache, new int[] {1}));
        }
    }

    /**
     * Each decoding step is one {@link Backend#repeat}ed pass (a GPU replays it as one graph) under a key of its
     * cache's own, since the pass reads and writes that cache's buffers; the prefill is not one.
     */
    @Test
    void eachCacheDecodesAsARepeatedPassOfItsOwn() {
        List<String> keys = new ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(1); GptModel model = model(keyRecording(cpu, keys), DType.F64)) {
            KvCache first = model.kvCache(B);
            KvCache second = model.kvCache(B);
            KvCache single = model.kvCache(1);
            int T = CONFIG.seqLen();
            model.prefill(first, new int[B * T], 1);
            model.prefill(second, new int[B * T], 1);
            model.prefill(single, new int[T], 1);
            assertEquals(List.of(), keys);
            model.decode(first, new int[] {1, 2});
            model.decode(first, new int[] {3, 4});
            model.decode(second, new int[] {1, 2});
            model.decode(single, new int[] {1});
            assertEquals(4, keys.size(), keys.toString());
            assertEquals(keys.get(0), keys.get(1), "two steps of one cache");
            assertEquals(3, keys.stream().distinct().count(), "three caches: " + keys);
        }
    }

    /** {@code cpu}, noting the key of every repeated pass. */
    private static Backend keyRecording(CpuBackend cpu, List<String> keys) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    if (method.getName().equals("repeat")) {
                        keys.add((String) args[0]);
                    }
                    return method.invoke(cpu, args);
                });
    }

    /** The CPU reads the position from its tensor and refuses one outside the cache before computing anything. */
    @Test
    void aDecodingPositionOutsideTheCacheIsRefused() {
        int C = CONFIG.dModel();
        int maxT = 4;
        try (CpuBackend backend = new CpuBackend(1)) {
            Tensor keys = backend.zeros(DType.F64, 1, maxT, C);
            Tensor values = backend.zeros(DType.F64, 1, maxT, C);
            Tensor wte = backend.zeros(DType.F64, CONFIG.vocab(), C);
            Tensor wpe = backend.zeros(DType.F64, maxT, C);
            Tensor tokens = backend.zeros(DType.I32, 1);
            Tensor qkv = backend.zeros(DType.F64, 1, 3 * C);
            Tensor twoRows = backend.zeros(DType.F64, 2, 3 * C);
            Tensor out = backend.zeros(DType.F64, 1, C);
            Tensor position = backend.zeros(DType.I32, 1);
            backend.uploadInts(position, new int[] {maxT});
            assertThrows(IllegalArgumentException.class,
                    () -> backend.embeddingForwardAt(out, tokens, wte, wpe, 1, position));
            assertThrows(IllegalArgumentException.class,
                    () -> backend.attentionDecode(out, qkv, keys, values, 1, position, CONFIG.heads()));
            backend.uploadInts(position, new int[] {maxT - 1});
            assertThrows(IllegalArgumentException.class, () -> backend.kvCacheStore(keys, values, twoRows, 1,
                    position));
            backend.uploadInts(position, new int[] {-1});
            assertThrows(IllegalArgumentException.class,
                    () -> backend.attentionDecode(out, qkv, keys, values, 1, position, CONFIG.heads()));
        }
    }

    private static double[] row(double[] logits, int r, int V) {
        return Arrays.copyOfRange(logits, r * V, (r + 1) * V);
    }
}
