package io.slope.engine.backend;

import io.slope.spec.MemoryEstimate;

/**
 * A backend could not allocate on its device: {@code requestedBytes} were asked for while the device had
 * {@code freeBytes} free. Thrown by a GPU backend when the driver reports that it is out of memory (other allocation
 * errors stay what they are), so that the trainer can run a micro-batch in smaller passes; the CPU's tensors are heap
 * arrays and run out as an {@link OutOfMemoryError} of the JVM instead.
 */
public final class OutOfDeviceMemory extends RuntimeException {
    private final long requestedBytes;
    private final long freeBytes;

    public OutOfDeviceMemory(long requestedBytes, long freeBytes) {
        this("out of device memory: " + MemoryEstimate.gib(requestedBytes) + " GiB requested, "
                + MemoryEstimate.gib(freeBytes) + " GiB free", requestedBytes, freeBytes, null);
    }

    /** The same shortfall, told in the caller's words (what was running, what to change). */
    public OutOfDeviceMemory(String message, long requestedBytes, long freeBytes, Throwable cause) {
        super(message, cause);
        this.requestedBytes = requestedBytes;
        this.freeBytes = freeBytes;
    }

    public long requestedBytes() {
        return requestedBytes;
    }

    public long freeBytes() {
        return freeBytes;
    }
}
