package io.slope.cuda;

import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.sparse.NmPattern;
import java.util.HashMap;
import java.util.Map;

/**
 * The GPU's sparse layer (docs/method.md, ADR 004): kept values (the fp32 master parameter), the static row mask as
 * kept column indices, the column mask (one byte per weight), and the operands the GEMMs use: cuSPARSELt-compressed
 * W^R and (W^{R,C})ᵀ when the pattern runs on the 2:4 tensor cores, masked dense copies otherwise.
 */
final class CudaSparseLinear implements SparseLinear {
    private final int dOut;
    private final int dIn;
    private final NmPattern pattern;
    private final boolean doublePrune;
    final CudaTensor values;
    /** dOut × keptPerRow I32, increasing per row. */
    final CudaTensor rowKept;
    /** dOut × dIn bytes, 1 = kept in the backward operand. */
    final DevicePointer columnMask;
    /** True: forward (and, double-pruned, backward) run on cuSPARSELt. */
    final boolean sparseKernels;
    /** cuSPARSELt operands: W^R (dOut × dIn) and (W^{R,C})ᵀ (dIn × dOut); null on the masked dense path. */
    CusparseLt.Operand forward;
    CusparseLt.Operand backward;
    /** Whether {@link #forward} holds the row mask's support (values then written in place). */
    boolean forwardSupportCompressed;
    /** Whether {@link #backward} holds the current column mask's support (values then written in place). */
    boolean backwardSupportCompressed;
    /** Masked dense operands (dOut × dIn) in the GEMM precision when not on cuSPARSELt. */
    DevicePointer denseForward;
    DevicePointer denseBackward;
    final Map<Integer, CusparseLt.Plan> forwardPlans = new HashMap<>();
    final Map<Integer, CusparseLt.Plan> backwardPlans = new HashMap<>();

    CudaSparseLinear(CudaTensor values, CudaTensor rowKept, DevicePointer columnMask, int dOut, int dIn,
            NmPattern pattern, boolean doublePrune, boolean sparseKernels) {
        this.values = values;
        this.rowKept = rowKept;
        this.columnMask = columnMask;
        this.dOut = dOut;
        this.dIn = dIn;
        this.pattern = pattern;
        this.doublePrune = doublePrune;
        this.sparseKernels = sparseKernels;
    }

    /** Every aligned group of 4 along the pattern's axis keeps at most 2: the 2:4 tensor cores apply (ADR 004). */
    static boolean fitsTwoFour(NmPattern p) {
        return (p.m() % 4 == 0 && p.n() <= 2) || (p.m() == 2 && p.n() == 1);
    }

    /** Every aligned group of 4 keeps exactly 2: the compressed value slots are the kept entries, in order. */
    static boolean exactlyTwoOfFour(NmPattern p) {
        return (p.m() == 4 && p.n() == 2) || (p.m() == 2 && p.n() == 1);
    }

    @Override
    public int dOut() {
        return dOut;
    }

    @Override
    public int dIn() {
        return dIn;
    }

    @Override
    public NmPattern pattern() {
        return pattern;
    }

    @Override
    public boolean doublePrune() {
        return doublePrune;
    }

    @Override
    public Tensor values() {
        return values;
    }
}
