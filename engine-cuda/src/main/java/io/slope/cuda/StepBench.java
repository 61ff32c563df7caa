package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.AdamW;
import io.slope.engine.train.Windows;
import io.slope.spec.Mode;
import io.slope.spec.RunSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Times whole training steps of a GPT-2-shaped model on the CUDA backend (bench/NOTES.md: {@code accum} micro-batches
 * of {@code batch} sequences per optimizer step, 1 for protocol (b), 64 for (a)) and prints one JSON line per
 * configuration; with SLOPE_CUDA_PROFILE=1 also the time per operation (each synchronised, so the total is slower than
 * the unprofiled step). Initial weights are N(0, 0.02) from Philox, drawn in parallel (the values do not matter for
 * timing, only that they are random and nonzero).
 *
 * <p>{@code StepBench layers heads dModel seqLen vocab batch accum steps mode[:refresh] ...}
 */
public final class StepBench {
    /** SLOPE_CUDA_NCU_STEP=1: the last timed step is the range Nsight Compute records (device.sh phase kernels). */
    private static final boolean NCU_STEP = "1".equals(System.getenv("SLOPE_CUDA_NCU_STEP"));
    private static final RunSpec.Optimizer ADAMW = new RunSpec.Optimizer(3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0);

    private StepBench() {}

    public static void main(String[] args) {
        int layers = Integer.parseInt(args[0]);
        int heads = Integer.parseInt(args[1]);
        int dModel = Integer.parseInt(args[2]);
        int seqLen = Integer.parseInt(args[3]);
        int vocab = Integer.parseInt(args[4]);
        int batch = Integer.parseInt(args[5]);
        int accum = Integer.parseInt(args[6]);
        int steps = Integer.parseInt(args[7]);
        try (CudaBackend backend = new CudaBackend(0, CudaBackend.Precision.BF16)) {
            for (int i = 8; i < args.length; i++) {
                String[] modeRefresh = args[i].split(":");
                Mode mode = Mode.valueOf(modeRefresh[0]);
                int refresh = modeRefresh.length > 1 ? Integer.parseInt(modeRefresh[1]) : 1;
                GptConfig config = new GptConfig(layers, heads, dModel, seqLen, vocab, mode, NmPattern.twoFour(),
                        true);
                run(backend, config, batch, accum, steps, refresh);
            }
        }
    }

    static Map<String, double[]> randomWeights(GptConfig config) {
        Map<String, double[]> weights = new java.util.LinkedHashMap<>();
        GptModel.parameterShapes(config).forEach((name, shape) -> {
            long stream = Philox.stream("bench/" + name);
            int n = java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
            weights.put(name, java.util.stream.IntStream.range(0, n).parallel()
                    .mapToDouble(i -> name.contains("ln_") && name.endsWith(".weight") ? 1.0
                            : 0.02 * Philox.normal(1, stream, i)).toArray());
        });
        return weights;
    }

    private static void run(CudaBackend backend, GptConfig config, int B, int accum, int steps, int refresh) {
        long[] memBefore = backend.memoryInfo();
        Map<String, double[]> init = randomWeights(config);
        try (GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, init)) {
            AdamW adamw = new AdamW(backend, ADAMW);
            List<Parameter> params = model.parameters();
            int T = config.seqLen();
            int[] windows = new int[B * (T + 1)];
            for (int i = 0; i < windows.length; i++) {
                windows[i] = (int) Philox.uniformLong(7, 3, i, config.vocab());
            }
            int[] in = Windows.inputs(windows, T);
            int[] out = Windows.targets(windows, T);
            int warmup = 2;
            List<Double> seconds = new ArrayList<>();
            double loss = 0;
            for (int s = 0; s < warmup + steps; s++) {
                if (s == warmup) {
                    backend.profile().clear();
                }
                boolean profiledByNcu = NCU_STEP && s == warmup + steps - 1;
                if (profiledByNcu) {
                    backend.profilerRange(true);
                }
                long start = System.nanoTime();
                for (Parameter p : params) {
                    backend.zero(p.grad());
                }
                for (int micro = 0; micro < accum; micro++) {
                    model.forwardBackward(in, out, B, 1.0 / ((double) B * T * accum));
                }
                adamw.step(params, 3e-4);
                boolean refreshNow = (s + 1) % refresh == 0;
                for (Parameter p : params) {
                    if (p.isSparse()) {
                        backend.updateSparseOperands(p.sparse(), refreshNow);
                    }
                }
                loss = model.meanLoss(B);
                if (profiledByNcu) {
                    backend.profilerRange(false);
                }
                if (s >= warmup) {
                    seconds.add((System.nanoTime() - start) / 1e9);
                }
            }
            seconds.sort(null);
            double median = seconds.get(seconds.size() / 2);
            long used = memBefore[0] - backend.memoryInfo()[0];
            long denseParams = GptModel.parameterShapes(config).values().stream()
                    .mapToLong(sh -> java.util.Arrays.stream(sh).asLongStream().reduce(1, (a, b) -> a * b)).sum();
            double tokensPerSecond = (double) B * T * accum / median;
            double flopPerToken = 6.0 * denseParams + 12.0 * config.layers() * T * config.dModel();
            System.out.printf("{\"layers\": %d, \"dModel\": %d, \"seqLen\": %d, \"batch\": %d, \"gradAccum\": %d, "
                    + "\"mode\": \"%s\", \"columnMaskRefresh\": %d, \"stepSecondsMedian\": %.4f, "
                    + "\"tokensPerSecond\": %.0f, \"mfu\": %.4f, \"deviceBytesUsed\": %d, \"loss\": %.4f, "
                    + "\"profiled\": %b}%n", config.layers(), config.dModel(), T, B, accum, config.mode(), refresh,
                    median, tokensPerSecond, tokensPerSecond * flopPerToken / 989e12, used, loss,
                    !backend.profile().isEmpty());
            printProfile(backend, steps);
        }
    }

    private static void printProfile(CudaBackend backend, int steps) {
        if (backend.profile().isEmpty()) {
            return;
        }
        double total = backend.profile().values().stream().mapToLong(v -> v[1]).sum() / 1e6 / steps;
        System.out.printf("  profile per step (ms, synchronised), total %.2f:%n", total);
        backend.profile().entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue()[1], a.getValue()[1]))
                .limit(25)
                .forEach(e -> System.out.printf("  %9.3f ms %5.1f%%  %4d calls  %s%n", e.getValue()[1] / 1e6 / steps,
                        100.0 * e.getValue()[1] / 1e6 / steps / total, e.getValue()[0] / steps, e.getKey()));
        backend.profile().clear();
    }
}
