package io.slope.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import jcuda.Pointer;

/**
 * The device-side table of a multi-tensor launch ({@code sum_squares_multi}, {@code adamw_multi} in optimizer.cuh):
 * one fixed-size record per tensor and the number of each tensor's first chunk of {@link #CHUNK} elements. Uploaded
 * once and reused for as long as the records are byte for byte the same (the same tensors in the same order), so a
 * steady training step uploads nothing.
 */
final class MultiTensorTable {
    /** MT_CHUNK in optimizer.cuh. */
    static final int CHUNK = 4096;
    /** At most this many blocks, so the partition of a sum is fixed for a given list. */
    private static final int MAX_GRID = 1024;

    private final byte[] records;
    private final DevicePointer deviceRecords;
    private final DevicePointer chunkStart;
    final int count;
    final long chunks;

    private MultiTensorTable(CudaDevice device, byte[] records, long[] counts) {
        this.records = records;
        this.count = counts.length;
        long[] starts = new long[count];
        long total = 0;
        for (int t = 0; t < count; t++) {
            starts[t] = total;
            total += (counts[t] + CHUNK - 1) / CHUNK;
        }
        this.chunks = total;
        deviceRecords = device.allocate(records.length);
        chunkStart = device.allocate(8L * count);
        device.copyToDevice(deviceRecords, Pointer.to(records), records.length);
        device.copyToDevice(chunkStart, Pointer.to(starts), 8L * count);
    }

    /** Records of {@code size} bytes each, little-endian as the kernels read them; fill in list order. */
    static ByteBuffer records(int count, int size) {
        return ByteBuffer.allocate(count * size).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** {@code previous} when it holds exactly these records, else a new table (the previous one freed). */
    static MultiTensorTable of(CudaDevice device, MultiTensorTable previous, ByteBuffer records, long[] counts) {
        byte[] bytes = records.array();
        if (previous != null && Arrays.equals(previous.records, bytes)) {
            return previous;
        }
        if (previous != null) {
            previous.free(device);
        }
        return new MultiTensorTable(device, bytes, counts);
    }

    long recordsAddress() {
        return deviceRecords.address();
    }

    long chunkStartAddress() {
        return chunkStart.address();
    }

    int grid() {
        return (int) Math.max(1, Math.min(chunks, MAX_GRID));
    }

    void free(CudaDevice device) {
        device.synchronize();
        device.free(deviceRecords);
        device.free(chunkStart);
    }
}
