package io.slope.cuda;

/**
 * Prints one JSON object describing the GPU, its driver and the libraries the CUDA backend binds, for result files
 * ({@code bench/results/}): {@code java -cp ... io.slope.cuda.DeviceReport [commit]}.
 */
public final class DeviceReport {
    private DeviceReport() {}

    public static void main(String[] args) {
        String commit = args.length > 0 ? args[0] : "unknown";
        try (CudaBackend b = new CudaBackend(0, CudaBackend.Precision.BF16)) {
            long[] mem = b.memoryInfo();
            System.out.printf("{\"commit\": \"%s\", \"device\": \"%s\", \"computeCapability\": %d, "
                    + "\"driverVersion\": %d, \"cublasLtVersion\": %d, \"cusparseLtVersion\": %d, "
                    + "\"memoryTotalBytes\": %d, \"attention\": \"%s\", \"java\": \"%s\"}%n", commit,
                    b.deviceName(), b.device().computeCapability(), b.device().driverVersion(), b.cublasVersion(),
                    b.cusparse().version(), mem[1], b.attentionImplementation(),
                    System.getProperty("java.runtime.version"));
        }
    }
}
