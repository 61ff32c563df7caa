package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.bind.annotation.Bindable;

/**
 * The memory of one of the service's GPUs, in bytes ({@code SLOPE_GPU_MEMORY_BYTES}, default 80 GB: an 80 GB H100 has
 * 79.6 GiB, so the default leaves it about 5 GiB for the CUDA context and libraries, which the estimate leaves out). A
 * run with backend {@code cuda} whose estimated peak (io.slope.spec.GpuMemoryEstimate) is larger is refused at submit.
 * Set it to the smallest GPU any worker has: a run may land on any of them.
 */
@ConfigurationProperties("slope.gpu")
public record GpuSettings(@Bindable(defaultValue = "80000000000") long memoryBytes) {
    public GpuSettings {
        if (memoryBytes < 1) {
            throw new IllegalArgumentException("slope.gpu.memory-bytes (SLOPE_GPU_MEMORY_BYTES) must be at least 1, "
                    + "got " + memoryBytes);
        }
    }
}
