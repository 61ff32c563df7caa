package io.slope.cuda;

import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.sparse.NmPattern;
import java.util.HashMap;
import java.util.Map;

/**
 * The GPU's sparse layer (docs/method.md, ADR 004): kept values (the fp32 master parameter), the static row mask as
 * each kept entry's offset within its group of M (a byte per kept weight), the column mask (a bit per weight), and the
 * operands the GEMMs use: cuSPARSELt-compressed W^R and (W^{R,C})ᵀ when the pattern runs on the 2:4 tensor cores,
 * masked dense copies otherwise. Both masks are laid out as {@link PackedMasks} describes; at 2:4 (d_out a multiple of
 * 32) they take 0.5 + 0.125 bytes per weight of the layer, where int32 indices and a byte per weight took 2 + 1: with
 * the kept values, their gradient and moments (8) and the two compressed operands (2.25), 10.875 bytes per weight
 * against a dense layer's 16, 0.68× (bench/NOTES.md, "Training memory accounting"). A layer that decodes on the
 * few-rows kernel adds its {@link #decodeIndex}: 0.125 bytes per weight more.
 */
final class CudaSparseLinear implements SparseLinear {
    private final int dOut;
    private final int dIn;
    private final NmPattern pattern;
    private final boolean doublePrune;
    final CudaTensor values;
    /** dOut × keptPerRow bytes: each kept entry's offset within its aligned group of M along dIn (PackedMasks). */
    final DevicePointer rowKept;
    /** ⌈dOut / 32⌉ × dIn 32-bit words, a bit per weight along dOut, 1 = kept in the backward operand (PackedMasks). */
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
    /**
     * The few-rows forward's index (two_four_decode.cuh): the row mask again at 4 bits per group of 4 along dIn, dOut ×
     * dIn/8 bytes (0.125 per weight), so that a decoding step reads 1.125 bytes per weight with the bf16 values. Built
     * at the layer's first forward of at most 16 rows on that kernel (an eager pass: CudaBackend.repeat records only
     * later ones), null before; the row mask never changes, so neither does it. Freed with the backend's allocations.
     */
    DevicePointer decodeIndex;
    /** Masked dense operands (dOut × dIn) in the GEMM precision when not on cuSPARSELt (dX: or when faster there). */
    DevicePointer denseForward;
    DevicePointer denseBackward;
    /** On the 2:4 path: whether dX runs on the masked dense W^{R,C}; null until the first backward decides. */
    Boolean dxOnDense;
    /** Forward plans per batch width and the bf16 bias their epilogue adds (its address; 0: none). */
    final Map<ForwardPlanKey, CusparseLt.Plan> forwardPlans = new HashMap<>();
    final Map<Integer, CusparseLt.Plan> backwardPlans = new HashMap<>();

    /** The inference form's stacked operand for the adapter last passed to sparseLowRankForward; null before. */
    StackedLowRank stackedLowRank;

    record ForwardPlanKey(int rows, long bias) {}

    /**
     * [W^R; Aᵀ] for one adapter A (docs/method.md, "Merge and the inference form"): dOut + rankPadded rows of dIn, the
     * adapter's r rows padded with zero rows to a multiple of 32 (cuSPARSELt's m), compressed once and multiplied with
     * plans per batch width. Built from the values and A at the write versions it records; operand null where A is not
     * 2:4 along dIn (the forward then runs unfused). It holds W^R a second time beside {@link #forward} (0.5625 bytes
     * per weight at 2:4), which the unfused forward still needs.
     */
    static final class StackedLowRank {
        final CudaTensor a;
        final int rankPadded;
        long valuesVersion;
        long aVersion;
        CusparseLt.Operand operand;
        final Map<Integer, CusparseLt.Plan> plans = new HashMap<>();

        StackedLowRank(CudaTensor a, int rankPadded) {
            this.a = a;
            this.rankPadded = rankPadded;
        }

        /** Built from these values and this A as they are now. */
        boolean current(CudaTensor values, CudaTensor adapter) {
            return a == adapter && valuesVersion == values.writeVersion && aVersion == adapter.writeVersion;
        }

        /** Frees the compressed operand and the plans' workspaces (the caller has synchronised). */
        void free() {
            if (operand != null) {
                operand.free();
                operand = null;
            }
            plans.values().forEach(CusparseLt.Plan::free);
            plans.clear();
        }
    }

    CudaSparseLinear(CudaTensor values, DevicePointer rowKept, DevicePointer columnMask, int dOut, int dIn,
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

    /** The device bytes of both masks: {@link PackedMasks#rowMaskBytes} and 4 per column-mask word. */
    long maskBytes() {
        return PackedMasks.rowMaskBytes(dOut, dIn, pattern) + 4 * PackedMasks.columnMaskWords(dOut, dIn);
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
