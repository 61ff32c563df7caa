package io.slope.cuda;

import java.util.EnumMap;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;

/**
 * One CUDA backend per precision for the whole test JVM (opening one loads the module and the libraries). Without a
 * usable GPU every GPU test is skipped with the provider's reason, so CPU-only machines and CI stay green.
 */
final class GpuBackends {
    private static final Map<CudaBackend.Precision, CudaBackend> OPEN = new EnumMap<>(CudaBackend.Precision.class);
    private static String unavailable;
    private static boolean probed;

    private GpuBackends() {}

    static synchronized CudaBackend get(CudaBackend.Precision precision) {
        if (!probed) {
            probed = true;
            unavailable = new CudaBackendProvider().unavailableReason().orElse(null);
            if (unavailable != null) {
                System.out.println("GPU tests skipped: " + unavailable);
            }
        }
        Assumptions.assumeTrue(unavailable == null, () -> "no usable GPU here, GPU test skipped: " + unavailable);
        return OPEN.computeIfAbsent(precision, p -> new CudaBackend(0, p));
    }

    /** Skips the test unless a GPU and libnccl.so.2 are here; returns how many GPUs the driver reports. */
    static int withNccl() {
        get(CudaBackend.Precision.FP32_DEBUG);
        Assumptions.assumeTrue(NativeLibraries.find(Nccl.LIBRARY).isPresent(), () -> "NCCL test skipped: "
                + NativeLibraries.missing("NCCL", Nccl.LIBRARY));
        int[] count = new int[1];
        jcuda.driver.JCudaDriver.cuDeviceGetCount(count);
        return count[0];
    }

    /** Skips the test unless at least two GPUs and NCCL are here. */
    static void withTwoGpus() {
        int gpus = withNccl();
        Assumptions.assumeTrue(gpus >= 2, () -> "two-GPU NCCL test skipped: " + gpus + " GPU(s) here");
    }
}
