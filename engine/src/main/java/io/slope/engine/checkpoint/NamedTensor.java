package io.slope.engine.checkpoint;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A named tensor as stored on disk: element type, shape (row-major) and the elements' little-endian bytes. Model
 * agnostic on purpose: the backend converts its own arrays with the factories and reads them back with the accessors.
 * The data array is not copied (checkpoints are large); callers must not change it while a write is in progress.
 */
public record NamedTensor(String name, SafetensorsDType dtype, long[] shape, byte[] data) {
    public NamedTensor {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("tensor name must not be empty");
        }
        if (name.equals("__metadata__")) {
            throw new IllegalArgumentException("tensor name \"__metadata__\" is reserved by safetensors");
        }
        shape = shape.clone();
        long expected = elementCount(name, shape) * dtype.bytes();
        if (data.length != expected) {
            throw new IllegalArgumentException("tensor " + name + ": shape " + Arrays.toString(shape) + " of "
                    + dtype + " needs " + expected + " bytes, got " + data.length);
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long elementCount() {
        return elementCount(name, shape);
    }

    /** Stores doubles as F64: exact. */
    public static NamedTensor f64(String name, long[] shape, double[] values) {
        ByteBuffer buffer = littleEndian(values.length * 8L);
        buffer.asDoubleBuffer().put(values);
        return new NamedTensor(name, SafetensorsDType.F64, shape, buffer.array());
    }

    /**
     * Stores doubles as F32, rounding each to the nearest float: exact for values that are floats already, as every
     * value of the fp32 CPU backend is.
     */
    public static NamedTensor f32(String name, long[] shape, double[] values) {
        ByteBuffer buffer = littleEndian(values.length * 4L);
        for (double value : values) {
            buffer.putFloat((float) value);
        }
        return new NamedTensor(name, SafetensorsDType.F32, shape, buffer.array());
    }

    public static NamedTensor f32(String name, long[] shape, float[] values) {
        ByteBuffer buffer = littleEndian(values.length * 4L);
        buffer.asFloatBuffer().put(values);
        return new NamedTensor(name, SafetensorsDType.F32, shape, buffer.array());
    }

    public static NamedTensor i32(String name, long[] shape, int[] values) {
        ByteBuffer buffer = littleEndian(values.length * 4L);
        buffer.asIntBuffer().put(values);
        return new NamedTensor(name, SafetensorsDType.I32, shape, buffer.array());
    }

    public static NamedTensor i64(String name, long[] shape, long[] values) {
        ByteBuffer buffer = littleEndian(values.length * 8L);
        buffer.asLongBuffer().put(values);
        return new NamedTensor(name, SafetensorsDType.I64, shape, buffer.array());
    }

    /** Bytes as U8, e.g. masks. The array is used as is, not copied. */
    public static NamedTensor u8(String name, long[] shape, byte[] values) {
        return new NamedTensor(name, SafetensorsDType.U8, shape, values);
    }

    /** The elements as doubles, from F64 or F32 (widening a float to a double is exact). */
    public double[] toDoubles() {
        ByteBuffer buffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        return switch (dtype) {
            case F64 -> {
                double[] values = new double[(int) elementCount()];
                buffer.asDoubleBuffer().get(values);
                yield values;
            }
            case F32 -> {
                double[] values = new double[(int) elementCount()];
                for (int i = 0; i < values.length; i++) {
                    values[i] = buffer.getFloat();
                }
                yield values;
            }
            default -> throw wrongType("F64 or F32");
        };
    }

    public float[] toFloats() {
        requireType(SafetensorsDType.F32);
        float[] values = new float[(int) elementCount()];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        return values;
    }

    public int[] toInts() {
        requireType(SafetensorsDType.I32);
        int[] values = new int[(int) elementCount()];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(values);
        return values;
    }

    public long[] toLongs() {
        requireType(SafetensorsDType.I64);
        long[] values = new long[(int) elementCount()];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(values);
        return values;
    }

    /** The U8 elements. Returns the stored array itself, not a copy. */
    public byte[] toBytes() {
        requireType(SafetensorsDType.U8);
        return data;
    }

    /** Same name, type, shape and bytes (a record's generated equals would compare the arrays by identity). */
    @Override
    public boolean equals(Object o) {
        return o instanceof NamedTensor other && name.equals(other.name) && dtype == other.dtype
                && Arrays.equals(shape, other.shape) && Arrays.equals(data, other.data);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * name.hashCode() + dtype.hashCode()) + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }

    private void requireType(SafetensorsDType expected) {
        if (dtype != expected) {
            throw wrongType(expected.name());
        }
    }

    private IllegalStateException wrongType(String expected) {
        return new IllegalStateException("tensor " + name + " is " + dtype + ", not " + expected);
    }

    private static long elementCount(String name, long[] shape) {
        long count = 1;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("tensor " + name + ": negative dimension in "
                        + Arrays.toString(shape));
            }
            count = Math.multiplyExact(count, dim);
        }
        return count;
    }

    private static ByteBuffer littleEndian(long bytes) {
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a tensor holds at most 2 GiB; split it (" + bytes + " bytes)");
        }
        return ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }
}
