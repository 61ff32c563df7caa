package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.BoundedMemoryBackend;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import org.junit.jupiter.api.Test;

/**
 * A forward alone (evaluation, prefill) allocates no layer's activations for a backward: its layers share one layer's
 * buffers, so a deep model's evaluation or prefill holds a fraction of a training step's activations, and computes the
 * same losses bit for bit.
 */
class ForwardOnlyActivationsTest {
    private static final GptConfig CONFIG = new GptConfig(6, 2, 32, 16, 40, Mode.SLOPE, NmPattern.twoFour(), true);
    private static final int B = 3;

    @Test
    void aForwardAloneHoldsAFractionOfATrainingSetAndGivesTheSameLosses() {
        int[] windows = TinyModels.randomWindows(B, CONFIG.seqLen(), CONFIG.vocab(), 5);
        int[] inputs = Windows.inputs(windows, CONFIG.seqLen());
        int[] targets = Windows.targets(windows, CONFIG.seqLen());
        try (BoundedMemoryBackend device = new BoundedMemoryBackend(new CpuBackend(2));
                GptModel model = GptModel.fromDenseWeights(device, CONFIG, DType.F64,
                        TinyModels.trainedLookingWeights(CONFIG, 3, 0.5))) {
            long weights = device.liveBytes();
            model.forward(inputs, targets, B);
            long forwardOnly = device.liveBytes() - weights;
            double[] forwardLosses = model.losses(B);

            model.forwardBackward(inputs, targets, B, 1.0);
            long training = device.liveBytes() - weights;
            model.forward(inputs, targets, B);
            assertArrayEquals(forwardLosses, model.losses(B), "the training set's forward gives the same losses");
            assertTrue(forwardOnly * 3 < training, "forward-only " + forwardOnly + " bytes, training " + training
                    + " bytes (6 layers)");
        }
    }
}
