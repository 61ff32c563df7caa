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

    /** Bytes per element as a device stores it (the CPU keeps every float in a double; see CpuTensor). */
    public int bytes() {
        return switch (this) {
            case F64 -> 8;
            case F32, I32 -> 4;
            case BF16 -> 2;
        };
    }
}
