package io.slope.engine.cpu;

import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;

/**
 * The CPU's sparse layer: kept values (the parameter), the static row mask as kept column indices, and two dense
 * operands rebuilt once per optimizer step — W^R transposed for the forward GEMM and the backward operand
 * (W^{R,C} or W^R) in natural layout for dX.
 */
final class CpuSparseLinear implements SparseLinear {
    private final int dOut;
    private final int dIn;
    private final NmPattern pattern;
    private final boolean doublePrune;
    final CpuTensor values;
    final int[] rowKept;
    /** dOut × dIn, 1 = kept in the backward operand. */
    final byte[] columnMask;
    /** W^R transposed: dIn × dOut. */
    final double[] forwardTransposed;
    /** W^{R,C} (or W^R): dOut × dIn. */
    final double[] backward;

    CpuSparseLinear(CpuTensor values, int[] rowKept, byte[] columnMask, int dOut, int dIn, NmPattern pattern,
            boolean doublePrune) {
        this.values = values;
        this.rowKept = rowKept;
        this.columnMask = columnMask;
        this.dOut = dOut;
        this.dIn = dIn;
        this.pattern = pattern;
        this.doublePrune = doublePrune;
        this.forwardTransposed = new double[dIn * dOut];
        this.backward = new double[dOut * dIn];
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

    void rebuildOperands(boolean refreshColumnMask) {
        double[] wr = NmMasks.scatterKept(values.data, rowKept, dOut, dIn);
        if (doublePrune && refreshColumnMask) {
            byte[] fresh = NmMasks.columnMask(wr, dOut, dIn, pattern);
            System.arraycopy(fresh, 0, columnMask, 0, fresh.length);
        }
        for (int o = 0; o < dOut; o++) {
            for (int i = 0; i < dIn; i++) {
                double w = wr[o * dIn + i];
                forwardTransposed[i * dOut + o] = w;
                backward[o * dIn + i] = doublePrune && columnMask[o * dIn + i] == 0 ? 0.0 : w;
            }
        }
    }
}
