package io.slope.engine.backend;

/** Storage precision of a tensor's elements. */
public enum DType {
    F64,
    F32,
    /** bfloat16 storage (the GPU's activation and GEMM-operand type). */
    BF16,
    I32;

    public boolean floating() {
        return this != I32;
    }
}
