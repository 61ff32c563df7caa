package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import java.util.Arrays;

/** A tensor in GPU memory, densely packed row-major at its storage precision. */
final class CudaTensor implements Tensor {
    final DType dtype;
    final int[] shape;
    final long count;
    final DevicePointer pointer;
    final long address;
    /**
     * For an I32 tensor uploaded from the host: its rows grouped by value (distinct values, bucket starts, row
     * indices increasing within a value), built at upload so the embedding backward needs no host round trip.
     */
    TokenBuckets buckets;

    /**
     * An fp32 weight (declared by the model, or updated by the optimizer) keeps a bf16 copy for the GEMMs: allocated at
     * its first use as a GEMM operand, rewritten by the optimizer in the same pass as the weight, and marked stale by
     * every other write ({@link #written}), after which the next GEMM converts it again.
     */
    boolean keepsBf16Copy;
    DevicePointer bf16Copy;
    boolean bf16CopyCurrent;
    /** The copy is memory this tensor does not own (a 2:4 layer's compressed value region), never freed with it. */
    boolean bf16CopyBorrowed;

    /**
     * Counts the writes that can change a weight ({@link #written} and the optimizer's): what is built from the weight
     * and kept (the inference form's stacked operand) compares it to know when to build again.
     */
    long writeVersion;

    record TokenBuckets(int distinct, CudaTensor tokens, CudaTensor starts, CudaTensor rows) {}

    CudaTensor(DType dtype, int[] shape, DevicePointer pointer) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.count = count(shape);
        this.pointer = pointer;
        this.address = pointer.address();
    }

    /** Called by every write that is not the optimizer's (uploads, zeroing, collectives): the bf16 copy is stale. */
    void written() {
        bf16CopyCurrent = false;
        writeVersion++;
    }

    static long count(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n *= d;
        }
        return n;
    }

    /** The storage code the kernels take for every float tensor (DT_* in common.cuh). */
    static int code(DType dtype) {
        return switch (dtype) {
            case F32 -> 0;
            case BF16 -> 1;
            case F64 -> 2;
            case I32 -> throw new IllegalArgumentException("I32 tensor where a float tensor is expected");
        };
    }

    int code() {
        return code(dtype);
    }

    long bytes() {
        return count * dtype.bytes();
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    @Override
    public String toString() {
        return "CudaTensor" + Arrays.toString(shape) + " " + dtype;
    }
}
