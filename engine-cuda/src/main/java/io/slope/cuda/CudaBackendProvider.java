package io.slope.cuda;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.BackendProvider;
import io.slope.engine.parallel.CollectiveProvider;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import jcuda.driver.JCudaDriver;

/**
 * The {@code cuda} backend for {@link io.slope.engine.backend.Backends}: usable when this jar carries its kernels, the
 * CUDA driver answers with at least one GPU, and cuBLASLt and cuSPARSELt can be found.
 * {@code SLOPE_CUDA_GEMM=fp32} selects the fp32 debug GEMMs (masked dense, no TF32) instead of bf16.
 */
public final class CudaBackendProvider implements BackendProvider {
    static final List<String> DRIVER_DIRS = List.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib");

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Optional<String> unavailableReason() {
        List<String> missing = new ArrayList<>();
        if (!CudaDevice.hasKernelImage()) {
            missing.add(CudaDevice.missingKernelsMessage());
        }
        for (List<String> lib : List.of(List.of("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"),
                List.of("libcusparseLt.so.0", "libcusparseLt.so"))) {
            if (NativeLibraries.find(lib).isEmpty()) {
                missing.add(NativeLibraries.missing(lib.getFirst(), lib));
            }
        }
        String gpu = gpuProblem();
        if (gpu != null) {
            missing.add(gpu);
        }
        return missing.isEmpty() ? Optional.empty() : Optional.of(String.join("; ", missing));
    }

    /** Null when the driver reports a GPU; otherwise why not (no libcuda.so.1, no device). */
    static String gpuProblem() {
        // Looked for before JCuda tries to link it, which logs a stack trace on machines without a driver.
        if (DRIVER_DIRS.stream().noneMatch(d -> Files.exists(Path.of(d, "libcuda.so.1")))
                && NativeLibraries.find(List.of("libcuda.so.1")).isEmpty()) {
            return "no CUDA driver: libcuda.so.1 is not in " + DRIVER_DIRS + " nor in " + NativeLibraries.searchPath();
        }
        try {
            JCudaDriver.setExceptionsEnabled(true);
            JCudaDriver.cuInit(0);
            int[] count = new int[1];
            JCudaDriver.cuDeviceGetCount(count);
            return count[0] > 0 ? null : "the CUDA driver reports no GPU";
        } catch (Throwable t) {
            return "no usable CUDA driver (libcuda.so.1): " + t.getMessage();
        }
    }

    @Override
    public Backend open() {
        return new CudaBackend(0, precision());
    }

    /**
     * The stage evaluations of a bf16 run in fp32: a second backend on the same GPU in the fp32 GEMM mode (masked dense
     * fp32 GEMMs without TF32, the project's attention kernels), which the model is copied into for each of them.
     */
    @Override
    public Optional<Backend> openFp32Evaluation() {
        return precision() == CudaBackend.Precision.BF16
                ? Optional.of(new CudaBackend(0, CudaBackend.Precision.FP32_DEBUG)) : Optional.empty();
    }

    private static CudaBackend.Precision precision() {
        String gemm = System.getenv().getOrDefault("SLOPE_CUDA_GEMM", "bf16");
        return switch (gemm) {
            case "bf16" -> CudaBackend.Precision.BF16;
            case "fp32" -> CudaBackend.Precision.FP32_DEBUG;
            default -> throw new IllegalArgumentException("SLOPE_CUDA_GEMM=" + gemm + ": use bf16 or fp32");
        };
    }

    /** NCCL on device 0, the GPU {@link #open} opens (a per-rank launcher gives each process one visible GPU). */
    @Override
    public CollectiveProvider collectives() {
        return NcclCollective.provider(0);
    }
}
