package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.merge.Merge;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.BoundedMemoryBackend;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A model built for inference (evaluation copies, sampling) has no gradients: its parameters take the weights' memory
 * once, not twice, it computes the training model's losses bit for bit (with adapters in the inference form too, run
 * fused), and it refuses a backward pass by name.
 */
class InferenceModelTest {
    private static final GptConfig CONFIG = new GptConfig(2, 2, 32, 16, 40, Mode.SLOPE, NmPattern.twoFour(), true);
    private static final int B = 2;

    @Test
    void anInferenceModelHoldsNoGradientsAndGivesTheTrainingModelsLosses() {
        Map<String, double[]> weights = TinyModels.trainedLookingWeights(CONFIG, 3, 0.5);
        int[] windows = TinyModels.randomWindows(B, CONFIG.seqLen(), CONFIG.vocab(), 5);
        int[] inputs = Windows.inputs(windows, CONFIG.seqLen());
        int[] targets = Windows.targets(windows, CONFIG.seqLen());
        try (BoundedMemoryBackend training = new BoundedMemoryBackend(new CpuBackend(2));
                BoundedMemoryBackend inference = new BoundedMemoryBackend(new CpuBackend(2));
                GptModel trained = GptModel.fromDenseWeights(training, CONFIG, DType.F64, weights);
                GptModel served = GptModel.restore(inference, CONFIG, DType.F64, trained.snapshot(),
                        GptModel.Use.INFERENCE)) {
            long gradientBytes = trained.parameters().stream().mapToLong(p -> (long) p.grad().dtype().bytes() * p.grad().size()).sum();
            assertEquals(training.liveBytes() - gradientBytes, inference.liveBytes(),
                    "the inference model holds what the training model does, less its gradients");
            served.parameters().forEach(p -> assertNull(p.grad(), p.name()));

            trained.forward(inputs, targets, B);
            served.forward(inputs, targets, B);
            assertArrayEquals(trained.losses(B), served.losses(B));

            IllegalStateException refused = assertThrows(IllegalStateException.class,
                    () -> served.forwardBackward(inputs, targets, B, 1.0));
            assertTrue(refused.getMessage().contains("built for inference"), refused.getMessage());
        }
    }

    /**
     * In the inference form (A pruned 2:4 along d_in, scale 1) a model built for inference runs each adapted layer as
     * one {@code sparseLowRankForward} ({@code sparseLowRankGeluForward} for an fc layer, its GELU after it), never the
     * adapter's own forward, and computes the training model's logits and losses bit for bit, in the batched forward
     * and in KV-cache decoding.
     */
    @Test
    void anInferenceModelRunsTheInferenceFormFusedWithTheTrainingModelsResults() {
        int rank = 4;
        Map<String, double[]> weights = TinyModels.trainedLookingWeights(CONFIG, 3, 0.5);
        ModelSnapshot adapted;
        try (CpuBackend cpu = new CpuBackend(2);
                GptModel model = GptModel.fromDenseWeights(cpu, CONFIG, DType.F64, weights)) {
            model.attachAdapters(TinyModels.randomAdapters(CONFIG, rank, 4, 0.3), rank, 1.0 / rank);
            adapted = Merge.inferenceForm(CONFIG, model.snapshot());
        }
        int[] windows = TinyModels.randomWindows(B, CONFIG.seqLen(), CONFIG.vocab(), 5);
        int[] inputs = Windows.inputs(windows, CONFIG.seqLen());
        int[] targets = Windows.targets(windows, CONFIG.seqLen());
        Map<String, Integer> trainingCalls = new HashMap<>();
        Map<String, Integer> inferenceCalls = new HashMap<>();
        try (Backend training = counting(new CpuBackend(2), trainingCalls);
                Backend inference = counting(new CpuBackend(2), inferenceCalls);
                GptModel trained = GptModel.restore(training, CONFIG, DType.F64, adapted);
                GptModel served = GptModel.restore(inference, CONFIG, DType.F64, adapted, GptModel.Use.INFERENCE)) {
            trained.forward(inputs, targets, B);
            served.forward(inputs, targets, B);
            assertArrayEquals(trained.logits(B), served.logits(B));
            assertArrayEquals(trained.losses(B), served.losses(B));

            KvCache trainedCache = trained.kvCache(B);
            KvCache servedCache = served.kvCache(B);
            trained.prefill(trainedCache, inputs, 3);
            served.prefill(servedCache, inputs, 3);
            int[] next = {7, 11};
            assertArrayEquals(trained.decode(trainedCache, next), served.decode(servedCache, next));

            assertEquals(0, inferenceCalls.getOrDefault("adapterForward", 0), "the served model's adapter forwards");
            assertEquals(trainingCalls.get("adapterForward"), inferenceCalls.get("sparseLowRankForward")
                    + inferenceCalls.get("sparseLowRankGeluForward"));
            assertTrue(inferenceCalls.get("sparseLowRankGeluForward") > 0, "the fc layers' GELU in the fused forward");
            assertEquals(0, trainingCalls.getOrDefault("sparseLowRankForward", 0)
                    + trainingCalls.getOrDefault("sparseLowRankGeluForward", 0), "the training model's");
        }
    }

    /** The backend with every call counted by name. */
    private static Backend counting(Backend backend, Map<String, Integer> calls) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    calls.merge(method.getName(), 1, Integer::sum);
                    try {
                        return method.invoke(backend, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }
}
