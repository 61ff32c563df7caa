package io.slope.engine.backend;

import io.slope.engine.sparse.NmPattern;

/**
 * A linear layer's N:M-sparse weight as a backend holds it (docs/method.md): the kept values of W^R in row-major order
 * ({@code dOut × dIn·N/M}, the master weights the optimizer updates), the static row mask, the current column mask
 * of the double-pruned backward operand, and whatever derived operands the backend multiplies with (dense copies on
 * the CPU, cuSPARSELt compressed buffers on the GPU). The derived operands are rebuilt only by
 * {@link Backend#updateSparseOperands}, once per optimizer step.
 */
public interface SparseLinear {
    int dOut();

    int dIn();

    NmPattern pattern();

    /** True: dX uses W^{R,C} (mode slope). False: dX uses W^R (exact gradient of the masked model). */
    boolean doublePrune();

    /** Kept values, {@code dOut × keptPerRow()}: the trainable parameter. */
    Tensor values();

    default int keptPerRow() {
        return dIn() / pattern().m() * pattern().n();
    }
}
