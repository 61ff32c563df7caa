package io.slope.engine.parallel;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.NamedTensor;

/**
 * Whether two checkpoints hold the same model up to fp64 summation order: what data-parallel training (gradients summed
 * per rank, then across ranks) may change. Masks must be identical; weights and optimizer state agree normwise.
 */
public final class SameModel {
    /** fp64 sums taken in another order differ in the last bits only. */
    public static final double FP64_ORDER_TOLERANCE = 1e-10;

    private SameModel() {}

    public static void assertSameModel(Checkpoint expected, Checkpoint actual) {
        assertEquals(expected.tensors().size(), actual.tensors().size());
        for (NamedTensor e : expected.tensors()) {
            NamedTensor a = actual.tensor(e.name());
            if (e.name().startsWith("row_kept/") || e.name().startsWith("column_mask/")) {
                assertEquals(e, a, e.name());
                continue;
            }
            double err = relativeError(a.toDoubles(), e.toDoubles());
            assertTrue(err < FP64_ORDER_TOLERANCE, e.name() + ": normwise " + err);
        }
        assertEquals(expected.state().get("adamSteps"), actual.state().get("adamSteps"));
        assertEquals(expected.state().get("adapterAdamSteps"), actual.state().get("adapterAdamSteps"));
    }
}
