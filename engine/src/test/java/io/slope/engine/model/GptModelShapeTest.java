package io.slope.engine.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import org.junit.jupiter.api.Test;

/** Parameter sizes are counted in long: a shape too large for one array is refused, never wrapped to a small one. */
class GptModelShapeTest {
    @Test
    void aWeightTooLargeForAnArrayIsRefusedNamingItNotWrappedToZero() {
        // 3C x C at C = 65536 is 3 * 2^32 elements: 0 in int arithmetic.
        GptConfig wide = new GptConfig(1, 1, 65536, 2, 2, Mode.SLOPE, new NmPattern(2, 4), true);

        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> GptModel.initialWeights(wide, 1));
        assertTrue(refused.getMessage().contains("h.0.attn.c_attn.weight")
                && refused.getMessage().contains("12884901888 elements")
                && refused.getMessage().contains("model.dModel"), refused.getMessage());
    }
}
