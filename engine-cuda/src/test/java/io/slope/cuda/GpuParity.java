package io.slope.cuda;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.cpu.CpuBackend;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Runs one operation on the GPU and on the CPU reference and compares them: fresh random nonzero inputs (the seed is
 * printed with any failure), GPU outputs poisoned with NaN before the call, the CPU given exactly the values the GPU
 * holds (bf16-rounded where the GPU rounds, including operands it casts to bf16 for a GEMM), fp64 on the CPU side.
 * Bounds are normwise: 4e-3 for bf16 outputs, 1e-5 for fp32 outputs (docs/architecture.md §4, issue 5).
 */
final class GpuParity {
    static final double BF16_BOUND = 4e-3;
    static final double FP32_BOUND = 1e-5;
    static final double FP64_BOUND = 1e-12;

    /** One tensor on both backends. */
    record Pair(Tensor gpu, Tensor cpu, DType type, int[] shape) {
        int size() {
            return (int) CudaTensor.count(shape);
        }
    }

    /** Any other per-backend object (a sparse layer, an attention state). */
    record Two<T>(T gpu, T cpu) {}

    /** Which backend a call is running on, and that backend's half of each pair. */
    record Side(Backend backend, boolean isGpu) {
        Tensor of(Pair p) {
            return isGpu ? p.gpu : p.cpu;
        }

        <T> T of(Two<T> two) {
            return isGpu ? two.gpu : two.cpu;
        }
    }

    /** The same operation on both backends, first the GPU. */
    void both(Consumer<Side> op) {
        op.accept(new Side(gpu, true));
        op.accept(new Side(cpu, false));
    }

    <T> Two<T> two(Function<Side, T> make) {
        return new Two<>(make.apply(new Side(gpu, true)), make.apply(new Side(cpu, false)));
    }

    final CudaBackend gpu;
    final CpuBackend cpu = new CpuBackend(2);
    final long seed = System.nanoTime();
    final SplittableRandom random = new SplittableRandom(seed);

    /** Parity against the shared GPU backend of a precision; skips the test when there is no usable GPU. */
    GpuParity(CudaBackend.Precision precision) {
        this.gpu = GpuBackends.get(precision);
    }

    /** The same, with one attention implementation of the GPU backend. */
    GpuParity(CudaBackend.Precision precision, CudaBackend.Attention attention) {
        this.gpu = GpuBackends.get(precision, attention);
    }

    /** Activations: bf16 in the bf16 mode, fp32 in the fp32 debug mode. */
    DType activation() {
        return gpu.precision() == CudaBackend.Precision.BF16 ? DType.BF16 : DType.F32;
    }

    /**
     * The CPU side stores bf16 where the GPU does (so an intermediate the GPU keeps in bf16, such as the adapter's dxa,
     * is rounded the same way before it is used again) and fp64 otherwise.
     */
    Pair pair(DType gpuType, int... shape) {
        DType cpuType = switch (gpuType) {
            case I32, BF16 -> gpuType;
            case F32, F64 -> DType.F64;
        };
        return new Pair(gpu.zeros(gpuType, shape), cpu.zeros(cpuType, shape), gpuType, shape);
    }

    /** Uniform in ±scale, never zero. */
    double[] randomValues(int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            double x;
            do {
                x = (random.nextDouble() * 2 - 1) * scale;
            } while (x == 0);
            v[i] = x;
        }
        return v;
    }

    /** Random input; the CPU gets the values as the GPU stores them. */
    Pair input(DType type, double scale, int... shape) {
        Pair p = pair(type, shape);
        set(p, randomValues(p.size(), scale));
        return p;
    }

    /** Random input that the GPU casts to bf16 for its GEMMs: the CPU gets the bf16-rounded values. */
    Pair gemmOperand(DType type, double scale, int... shape) {
        Pair p = pair(type, shape);
        double[] v = randomValues(p.size(), scale);
        if (gpu.precision() == CudaBackend.Precision.BF16) {
            for (int i = 0; i < v.length; i++) {
                v[i] = Bf16.value(Bf16.bits(v[i]));
            }
        }
        set(p, v);
        return p;
    }

    void set(Pair p, double[] values) {
        gpu.upload(p.gpu, values);
        cpu.upload(p.cpu, gpu.download(p.gpu));
    }

    Pair ints(int bound, int... shape) {
        Pair p = pair(DType.I32, shape);
        int[] v = new int[p.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = random.nextInt(bound);
        }
        gpu.uploadInts(p.gpu, v);
        cpu.uploadInts(p.cpu, v);
        return p;
    }

    /** A decoding position on both sides: the one-element I32 tensor the KV-cache operations read it from. */
    Pair position(int position) {
        Pair p = pair(DType.I32, 1);
        gpu.uploadInts(p.gpu, new int[] {position});
        cpu.uploadInts(p.cpu, new int[] {position});
        return p;
    }

    /** An output the op overwrites: NaN on the GPU, so an element it fails to write cannot pass. */
    Pair output(DType type, int... shape) {
        Pair p = pair(type, shape);
        double[] nan = new double[p.size()];
        Arrays.fill(nan, Double.NaN);
        gpu.upload(p.gpu, nan);
        return p;
    }

    double bound(DType type) {
        return switch (type) {
            case BF16 -> BF16_BOUND;
            case F32 -> FP32_BOUND;
            case F64 -> FP64_BOUND;
            case I32 -> 0;
        };
    }

    /** Asserts the normwise error is within the bound of the GPU tensor's precision; returns the error. */
    double check(String what, Pair p) {
        return check(what, p, bound(p.type));
    }

    double check(String what, Pair p, double bound) {
        double[] g = gpu.download(p.gpu);
        double[] c = cpu.download(p.cpu);
        double err = relativeError(g, c);
        boolean finite = Arrays.stream(g).allMatch(Double::isFinite);
        assertTrue(finite && err <= bound, what + " (" + p.type + " " + Arrays.toString(p.shape) + ", "
                + gpu.precision() + "): normwise error " + err + " > " + bound + (finite ? "" : " (non-finite output)")
                + "; seed " + seed);
        System.out.printf("parity %-44s %-9s %-5s err %.3e (bound %.0e)%n", what, gpu.precision(), p.type, err,
                bound);
        return err;
    }
}
