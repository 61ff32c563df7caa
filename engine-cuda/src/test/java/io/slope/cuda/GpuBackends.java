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
}
