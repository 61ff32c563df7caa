package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.BoundedMemoryBackend;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A model built for inference (evaluation copies, sampling) has no gradients: its parameters take the weights' memory
 * once, not twice, it computes the training model's losses bit for bit, and it refuses a backward pass by name.
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
}
