package io.slope.cuda;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;

/**
 * One CUDA backend per precision for the whole test JVM (opening one loads the module and the libraries). Without a
 * usable GPU every GPU test is skipped with the provider's reason, so CPU-only machines and CI stay green.
 */
final class GpuBackends {
    private static final Map<String, CudaBackend> OPEN = new HashMap<>();
    private static String unavailable;
    private static boolean probed;

    private GpuBackends() {}

    static synchronized CudaBackend get(CudaBackend.Precision precision) {
        return get(precision, CudaBackend.Attention.AUTO);
    }

    /** The backend of a precision with one attention implementation; cuDNN's skips the test where it is missing. */
    static synchronized CudaBackend get(CudaBackend.Precision precision, CudaBackend.Attention attention) {
        if (!probed) {
            probed = true;
            unavailable = new CudaBackendProvider().unavailableReason().orElse(null);
            if (unavailable != null) {
                System.out.println("GPU tests skipped: " + unavailable);
            }
        }
        Assumptions.assumeTrue(unavailable == null, () -> "no usable GPU here, GPU test skipped: " + unavailable);
        if (attention == CudaBackend.Attention.CUDNN) {
            String missing = cudnnProblem();
            Assumptions.assumeTrue(missing == null, () -> "cuDNN attention test skipped: " + missing);
        }
        return OPEN.computeIfAbsent(precision + "/" + attention, k -> new CudaBackend(0, precision, attention));
    }

    private static String cudnnProblem() {
        if (CudnnAttention.class.getResource(CudnnAttention.SHIM_RESOURCE) == null) {
            return "this jar has no cuDNN shim";
        }
        return NativeLibraries.find(CudnnAttention.CUDNN_FILES).isPresent() ? null
                : NativeLibraries.missing("cuDNN 9", CudnnAttention.CUDNN_FILES);
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
