package io.slope.engine.checkpoint;

/** Element types a checkpoint can hold; the names are safetensors' dtype strings. */
public enum DType {
    F64(8), F32(4), I64(8), I32(4), U8(1);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The safetensors name, refusing types this project does not write (F16, BF16, BOOL, ...). */
    public static DType fromSafetensorsName(String name) {
        for (DType type : values()) {
            if (type.name().equals(name)) {
                return type;
            }
        }
        throw new IllegalArgumentException("unsupported dtype \"" + name + "\"; supported: F64, F32, I64, I32, U8");
    }
}
