package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.BoundedMemoryBackend;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A forward alone (evaluation, prefill) allocates no layer's activations for a backward: its layers share one layer's
 * buffers, so a deep model's evaluation or prefill holds a fraction of a training step's activations, and computes the
 * same losses bit for bit (keeping no GELU input: a dense fc layer's GELU rides its GEMM, a sparse one's runs in place).
 */
class ForwardOnlyActivationsTest {
    private static final int B = 3;

    @ParameterizedTest
    @EnumSource(value = Mode.class, names = {"SLOPE", "DENSE"})
    void aForwardAloneHoldsAFractionOfATrainingSetAndGivesTheSameLosses(Mode mode) {
        GptConfig config = new GptConfig(6, 2, 32, 16, 40, mode, NmPattern.twoFour(), true);
        int[] windows = TinyModels.randomWindows(B, config.seqLen(), config.vocab(), 5);
        int[] inputs = Windows.inputs(windows, config.seqLen());
        int[] targets = Windows.targets(windows, config.seqLen());
        try (BoundedMemoryBackend device = new BoundedMemoryBackend(new CpuBackend(2));
                GptModel model = GptModel.fromDenseWeights(device, config, DType.F64,
                        TinyModels.trainedLookingWeights(config, 3, 0.5))) {
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
