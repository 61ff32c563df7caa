package io.slope.engine.backend;

/**
 * A tensor owned by a {@link Backend} (device-resident for a GPU backend). The host never reads its memory directly:
 * {@link Backend#download} is the one synchronising read.
 */
public interface Tensor {
    DType dtype();

    /** Dimensions, outermost first (row-major). */
    int[] shape();

    default long size() {
        long n = 1;
        for (int d : shape()) {
            n *= d;
        }
        return n;
    }
}
