package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;

/**
 * What the flash-style attention keeps from forward to backward: per (b, h, t) the log-sum-exp of the scaled scores
 * and D = dO·O, plus an fp32 copy of the output (B·T·C). O(T·C) per layer: no T×T matrix.
 */
final class AttentionState implements Tensor {
    final int B;
    final int T;
    final int heads;
    /** [2][B][heads][T] fp32: log-sum-exp, then D. */
    final CudaTensor stats;
    /** [B·T][C] fp32, allocated at the first forward of the project's kernels (cuDNN reads the output itself). */
    CudaTensor outputCopy;

    AttentionState(int B, int T, int heads, CudaTensor stats) {
        this.B = B;
        this.T = T;
        this.heads = heads;
        this.stats = stats;
    }

    @Override
    public DType dtype() {
        return DType.F32;
    }

    @Override
    public int[] shape() {
        return new int[] {2, B, heads, T};
    }
}
