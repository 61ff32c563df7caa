package io.slope.engine.cpu;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import java.util.Arrays;

/**
 * A CPU tensor: values in a {@code double[]} (ints in an {@code int[]}), rounded to the storage precision whenever a
 * kernel stores them (ADR 001).
 */
final class CpuTensor implements Tensor {
    final DType dtype;
    final int[] shape;
    final double[] data;
    final int[] ints;

    CpuTensor(DType dtype, int[] shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n *= d;
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor of " + n + " elements exceeds the CPU backend's 2^31 limit");
        }
        this.data = dtype.floating() ? new double[(int) n] : null;
        this.ints = dtype.floating() ? null : new int[(int) n];
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    int length() {
        return data != null ? data.length : ints.length;
    }

    /** Copies {@code len} values from {@code src[srcPos..]} to {@code data[dstPos..]}, rounded to this tensor's dtype. */
    void store(double[] src, int srcPos, int dstPos, int len) {
        switch (dtype) {
            case F64 -> System.arraycopy(src, srcPos, data, dstPos, len);
            case F32 -> {
                for (int i = 0; i < len; i++) {
                    data[dstPos + i] = (float) src[srcPos + i];
                }
            }
            case BF16 -> {
                for (int i = 0; i < len; i++) {
                    data[dstPos + i] = roundBf16(src[srcPos + i]);
                }
            }
            case I32 -> throw new IllegalStateException("store of floating values into an I32 tensor");
        }
    }

    /** Rounds {@code data[from..to)} in place to the storage precision. */
    void roundInPlace(int from, int to) {
        switch (dtype) {
            case F64 -> { }
            case F32 -> {
                for (int i = from; i < to; i++) {
                    data[i] = (float) data[i];
                }
            }
            case BF16 -> {
                for (int i = from; i < to; i++) {
                    data[i] = roundBf16(data[i]);
                }
            }
            case I32 -> throw new IllegalStateException("rounding an I32 tensor");
        }
    }

    double round(double v) {
        return switch (dtype) {
            case F64 -> v;
            case F32 -> (float) v;
            case BF16 -> roundBf16(v);
            case I32 -> throw new IllegalStateException("rounding an I32 tensor");
        };
    }

    /** Round to nearest even bfloat16 (through float, as a GPU converts its fp32 accumulators). */
    static double roundBf16(double v) {
        float f = (float) v;
        if (Float.isNaN(f)) {
            return f;
        }
        int bits = Float.floatToRawIntBits(f);
        bits = (bits + 0x7FFF + ((bits >>> 16) & 1)) & 0xFFFF0000;
        return Float.intBitsToFloat(bits);
    }
}
