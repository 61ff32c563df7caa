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
 * Times whole training steps of a GPT-2-shaped model on the CUDA backend (protocol (b) of bench/NOTES.md: one
 * micro-batch per optimizer step) and prints one JSON line per configuration; with SLOPE_CUDA_PROFILE=1 also the time
 * per operation (each synchronised, so the total is slower than the unprofiled step).
 *
 * <p>{@code StepBench layers heads dModel seqLen vocab batch steps mode[:refresh] ...}
 */
public final class StepBench {
    private static final RunSpec.Optimizer ADAMW = new RunSpec.Optimizer(3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 0, 0.0);

    private StepBench() {}

    public static void main(String[] args) {
        int layers = Integer.parseInt(args[0]);
        int heads = Integer.parseInt(args[1]);
        int dModel = Integer.parseInt(args[2]);
        int seqLen = Integer.parseInt(args[3]);
        int vocab = Integer.parseInt(args[4]);
        int batch = Integer.parseInt(args[5]);
        int steps = Integer.parseInt(args[6]);
        try (CudaBackend backend = new CudaBackend(0, CudaBackend.Precision.BF16)) {
            for (int i = 7; i < args.length; i++) {
                String[] modeRefresh = args[i].split(":");
                Mode mode = Mode.valueOf(modeRefresh[0]);
                int refresh = modeRefresh.length > 1 ? Integer.parseInt(modeRefresh[1]) : 1;
                GptConfig config = new GptConfig(layers, heads, dModel, seqLen, vocab, mode, NmPattern.twoFour(),
                        true);
                run(backend, config, batch, steps, refresh);
            }
        }
    }

    private static void run(CudaBackend backend, GptConfig config, int B, int steps, int refresh) {
        long[] memBefore = backend.memoryInfo();
        Map<String, double[]> init = GptModel.initialWeights(config, 1);
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
                long start = System.nanoTime();
                for (Parameter p : params) {
                    backend.zero(p.grad());
                }
                model.forwardBackward(in, out, B, 1.0 / (B * T));
                adamw.step(params, 3e-4);
                boolean refreshNow = (s + 1) % refresh == 0;
                for (Parameter p : params) {
                    if (p.isSparse()) {
                        backend.updateSparseOperands(p.sparse(), refreshNow);
                    }
                }
                loss = model.meanLoss(B);
                if (s >= warmup) {
                    seconds.add((System.nanoTime() - start) / 1e9);
                }
            }
            seconds.sort(null);
            double median = seconds.get(seconds.size() / 2);
            long used = memBefore[0] - backend.memoryInfo()[0];
            System.out.printf("{\"layers\": %d, \"dModel\": %d, \"seqLen\": %d, \"batch\": %d, \"mode\": \"%s\", "
                    + "\"columnMaskRefresh\": %d, \"stepSecondsMedian\": %.4f, \"tokensPerSecond\": %.0f, "
                    + "\"deviceBytesUsed\": %d, \"loss\": %.4f, \"profiled\": %b}%n", config.layers(),
                    config.dModel(), T, B, config.mode(), refresh, median, B * T / median, used, loss,
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
