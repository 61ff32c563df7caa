package io.slope.engine.checkpoint;

/**
 * Element types a checkpoint can hold, named as safetensors names them (not to be confused with the compute types of
 * {@code io.slope.engine.backend.DType}).
 */
public enum SafetensorsDType {
    F64(8), F32(4), I64(8), I32(4), U8(1);

    private final int bytes;

    SafetensorsDType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The safetensors name, refusing types this project does not write (F16, BF16, BOOL, ...). */
    public static SafetensorsDType fromSafetensorsName(String name) {
        for (SafetensorsDType type : values()) {
            if (type.name().equals(name)) {
                return type;
            }
        }
        throw new IllegalArgumentException("unsupported dtype \"" + name + "\"; supported: F64, F32, I64, I32, U8");
    }
}
