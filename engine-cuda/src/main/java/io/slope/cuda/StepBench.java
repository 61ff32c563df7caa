package io.slope.cuda;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Backends;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.data.BatchSource;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.rng.Philox;
import io.slope.engine.train.Trainer;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecs;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Times whole optimizer steps of the production {@link Trainer} (the step {@code slope train} and the GPU worker run)
 * on synthetic data: random token windows, N(0, 0.02) weights drawn in parallel (their values do not matter for timing,
 * only that they are random and nonzero). One {@link Measurement} per mode, the protocols of bench/NOTES.md. With
 * SLOPE_CUDA_PROFILE=1 the CUDA backend also prints the time per operation (each synchronised, so slower than a step);
 * with {@code events} by CUDA events, unsynchronised; with {@code replays} the same, each replay of the recorded
 * micro-batch one entry (CudaDevice).
 */
public final class StepBench {
    /** Dense-equivalent MFU is counted against the H100's dense bf16 peak, for every backend and mode. */
    private static final double PEAK_FLOPS = 989e12;
    /** SLOPE_CUDA_NCU_STEP=1: the last timed step is the range Nsight Compute records (device.sh phase kernels). */
    private static final boolean NCU_STEP = "1".equals(System.getenv("SLOPE_CUDA_NCU_STEP"));
    private static final ObjectMapper JSON = new ObjectMapper()
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE);

    /** A model shape by its bench name. */
    public record Shape(String name, int layers, int heads, int dModel, int seqLen, int vocab) {}

    /**
     * GPT-2's four sizes, and d = 2560: GPT-3 2.7B's depth and width with 64-wide heads (AttentionBench's 40 × 64), the
     * width where 2:4 gains most per GEMM (GPU_LIMITS.md §1).
     */
    public static final Map<String, Shape> PRESETS = presets(
            new Shape("gpt2-124M", 12, 12, 768, 1024, 50304),
            new Shape("gpt2-350M", 24, 16, 1024, 1024, 50304),
            new Shape("gpt2-774M", 36, 20, 1280, 1024, 50304),
            new Shape("gpt2-1558M", 48, 25, 1600, 1024, 50304),
            new Shape("d2560", 32, 40, 2560, 1024, 50304));

    /** bench/NOTES.md's protocols: micro-batches per optimizer step. */
    public enum Protocol {
        A(64), B(1);

        private final int microBatches;

        Protocol(int microBatches) {
            this.microBatches = microBatches;
        }

        public String wireName() {
            return name().toLowerCase();
        }
    }

    /** What to run: {@code batch} sequences per micro-batch; {@code threads} only for the CPU backend. */
    public record Setup(Shape shape, int batch, Protocol protocol, int warmup, int steps, String backend, int threads,
            String commit) {}

    /** One line of {@code step-<UTC>.jsonl}: the schema bench/step_table.py reads and PyTorch's baseline writes. */
    public record Measurement(String system, String model, String mode, Integer refresh, String protocol,
            long tokensPerS, double mfu, Double peakGb, Double deviceUsedGb, String peakSource, double stepMsMedian,
            String device, String commit, String utc, int layers, int heads, int dModel, int seqLen, int vocab,
            int batch, int accum, int steps, long params, double loss, String backend, boolean profiled,
            Boolean graphs, Map<String, String> dxChoices) {

        public String toJson() {
            try {
                return JSON.writeValueAsString(this);
            } catch (JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private StepBench() {}

    private static Map<String, Shape> presets(Shape... shapes) {
        Map<String, Shape> byName = new LinkedHashMap<>();
        for (Shape s : shapes) {
            byName.put(s.name(), s);
        }
        return java.util.Collections.unmodifiableMap(byName);
    }

    /**
     * Trains {@code setup.warmup() + setup.steps()} steps of one mode ({@code dense}, {@code slope:100}, …) on a
     * backend of its own, opened as {@code slope train} opens it, and times the last {@code steps}.
     */
    public static Measurement measure(Setup setup, String modeAndRefresh) {
        String[] parts = modeAndRefresh.split(":");
        Mode mode = Mode.fromWire(parts[0]);
        int refresh = parts.length > 1 ? Integer.parseInt(parts[1]) : 1;
        ResolvedSpec spec = spec(setup.shape(), mode, refresh, setup.batch(), setup.protocol().microBatches,
                setup.warmup() + setup.steps(), setup.backend(), setup.threads());
        GptConfig config = GptConfig.of(spec, setup.shape().vocab());
        try (Backend backend = Backends.open(spec)) {
            DeviceMemory memory = new DeviceMemory(backend);
            try (GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, randomWeights(config))) {
                return timeSteps(setup, spec, config, backend, memory, model, mode.sparse() ? refresh : null);
            }
        }
    }

    private static Measurement timeSteps(Setup setup, ResolvedSpec spec, GptConfig config, Backend backend,
            DeviceMemory memory, GptModel model, Integer refresh) {
        int accum = setup.protocol().microBatches;
        Trainer trainer = new Trainer(model, spec, syntheticBatches(setup.batch(), config.seqLen(), config.vocab(),
                accum));
        // Any download waits for all queued work, so the step's tail (optimizer, operand upkeep) is in its time.
        Tensor last = model.parameters().getLast().value();
        CudaBackend cuda = backend instanceof CudaBackend c ? c : null;
        List<Double> millis = new ArrayList<>();
        double loss = Double.NaN;
        long replaysBefore = 0;
        for (int s = 0; s < setup.warmup() + setup.steps(); s++) {
            if (s == setup.warmup() && cuda != null) {
                cuda.profile().clear();
                replaysBefore = cuda.replays();
            }
            boolean profiledByNcu = NCU_STEP && cuda != null && s == setup.warmup() + setup.steps() - 1;
            if (profiledByNcu) {
                cuda.profilerRange(true);
            }
            long start = System.nanoTime();
            loss = trainer.step(s).loss();
            backend.download(last);
            if (profiledByNcu) {
                cuda.profilerRange(false);
            }
            if (s >= setup.warmup()) {
                millis.add((System.nanoTime() - start) / 1e6);
            }
            memory.sample();
        }
        millis.sort(null);
        double median = millis.get(millis.size() / 2);
        long tokens = (long) setup.batch() * config.seqLen() * accum;
        double tokensPerS = tokens / (median / 1e3);
        long params = denseParameterCount(config);
        double flopPerToken = 6.0 * params + 12.0 * config.layers() * config.seqLen() * config.dModel();
        boolean profiled = cuda != null && !cuda.profile().isEmpty();
        if (profiled) {
            printProfile(cuda, setup.steps());
        }
        return new Measurement("slope", setup.shape().name(), config.mode().wireName(), refresh,
                setup.protocol().wireName(), Math.round(tokensPerS), tokensPerS * flopPerToken / PEAK_FLOPS,
                memory.peakGb(), memory.deviceUsedGb(), memory.source(), round(median, 3),
                cuda != null ? cuda.deviceName() : backend.name(), setup.commit(),
                Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(), config.layers(), config.heads(),
                config.dModel(), config.seqLen(), config.vocab(), setup.batch(), accum, setup.steps(), params,
                round(loss, 4), backend.name(), profiled, cuda == null ? null : cuda.replays() > replaysBefore,
                cuda == null ? null : dxChoices(cuda));
    }

    /** Per 2:4 dX shape and batch width, whether it ran on the 2:4 or the masked dense GEMM (the faster when timed). */
    private static Map<String, String> dxChoices(CudaBackend cuda) {
        Map<String, String> out = new java.util.TreeMap<>();
        cuda.kernelChoices().choices().forEach((key, choice) -> {
            if (key.startsWith(CudaBackend.DX_CHOICE_PREFIX)) {
                out.put(key.substring(CudaBackend.DX_CHOICE_PREFIX.length()), choice);
            }
        });
        return out;
    }

    /**
     * A benchmark's run as {@code slope train} would resolve it (the backend, its precision, the default adapter rank):
     * adapters never start inside the timed steps, and the learning rate is constant after a one-step warm-up.
     */
    static ResolvedSpec spec(Shape s, Mode mode, int refresh, int batch, int microBatches, int steps, String backend,
            int threads) {
        return RunSpecs.resolve(new RunSpec("bench", new RunSpec.Model(null, s.layers(), s.heads(),
                s.dModel(), s.seqLen()), new RunSpec.Sparsity(mode.wireName(), 2, 4, refresh, true),
                new RunSpec.Adapters(1.0, null), new RunSpec.Optimizer(3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 1, 1.0),
                new RunSpec.Training(1000 + steps, batch, microBatches, 1L),
                new RunSpec.Data(List.of("synthetic"), null, "gpt2", 0.1), null, null, backend, null, threads));
    }

    /** Random windows, one fixed set per micro-batch index, drawn before timing so no step pays for them. */
    private static BatchSource syntheticBatches(int B, int T, int vocab, int microBatches) {
        int[][] windows = new int[microBatches][];
        for (int micro = 0; micro < microBatches; micro++) {
            int m = micro;
            windows[micro] = IntStream.range(0, B * (T + 1)).map(i -> (int) Philox.uniformLong(7, m, i, vocab))
                    .toArray();
        }
        return (step, micro) -> windows[micro];
    }

    static Map<String, double[]> randomWeights(GptConfig config) {
        Map<String, double[]> weights = new LinkedHashMap<>();
        GptModel.parameterShapes(config).forEach((name, shape) -> {
            long stream = Philox.stream("bench/" + name);
            int n = Arrays.stream(shape).reduce(1, (a, b) -> a * b);
            weights.put(name, IntStream.range(0, n).parallel()
                    .mapToDouble(i -> name.contains("ln_") && name.endsWith(".weight") ? 1.0
                            : 0.02 * Philox.normal(1, stream, i)).toArray());
        });
        return weights;
    }

    /** N of the MFU: every dense weight once (the tied head is wte), positions included, as PyTorch counts it. */
    private static long denseParameterCount(GptConfig config) {
        return GptModel.parameterShapes(config).values().stream()
                .mapToLong(sh -> Arrays.stream(sh).asLongStream().reduce(1, (a, b) -> a * b)).sum();
    }

    private static double round(double x, int digits) {
        double scale = Math.pow(10, digits);
        return Math.round(x * scale) / scale;
    }

    /**
     * Device memory in use, read with cuMemGetInfo after each step: the backend has no high-water mark, so memory freed
     * within a step (a plan search's scratch in the first step) is missed. Null on the CPU.
     */
    private static final class DeviceMemory {
        private final CudaBackend cuda;
        private final long before;
        private long most;

        DeviceMemory(Backend backend) {
            this.cuda = backend instanceof CudaBackend c ? c : null;
            this.before = cuda == null ? 0 : inUse();
        }

        private long inUse() {
            long[] freeTotal = cuda.memoryInfo();
            return freeTotal[1] - freeTotal[0];
        }

        void sample() {
            if (cuda != null) {
                most = Math.max(most, inUse());
            }
        }

        /** What the run added to the card (model, optimizer, activations, scratch), like PyTorch's allocated peak. */
        Double peakGb() {
            return cuda == null ? null : round((most - before) / 1e9, 3);
        }

        /** The whole card's use, CUDA context and libraries included. */
        Double deviceUsedGb() {
            return cuda == null ? null : round(most / 1e9, 3);
        }

        String source() {
            return cuda == null ? "not measured on the CPU"
                    : "cuMemGetInfo after each step, minus before the model was built";
        }
    }

    /** The profiled operations per step (of {@code steps}), largest first; clears the profile. */
    static void printProfile(CudaBackend backend, int steps) {
        double total = backend.profile().entrySet().stream().filter(e -> !isHostEntry(e.getKey()))
                .mapToLong(e -> e.getValue()[1]).sum() / 1e6 / steps;
        System.out.printf("  profile per step (ms, %s), total %.2f:%n", backend.profile().containsKey(CudaDevice.IDLE)
                ? "GPU time by CUDA events, unsynchronised" : "synchronised", total);
        long[] operations = backend.profile().getOrDefault(CudaDevice.HOST_OPERATIONS, new long[2]);
        long[] waits = backend.profile().getOrDefault(CudaDevice.HOST_WAIT, new long[2]);
        System.out.printf("  host per step: %d operations queued, %d synchronisations, %.3f ms waiting for the GPU%n",
                operations[0] / steps, waits[0] / steps, waits[1] / 1e6 / steps);
        backend.profile().entrySet().stream()
                .filter(e -> !isHostEntry(e.getKey()))
                .sorted((a, b) -> Long.compare(b.getValue()[1], a.getValue()[1]))
                .limit(25)
                .forEach(e -> System.out.printf("  %9.3f ms %5.1f%%  %4d calls  %s%n", e.getValue()[1] / 1e6 / steps,
                        100.0 * e.getValue()[1] / 1e6 / steps / total, e.getValue()[0] / steps, e.getKey()));
        backend.profile().clear();
    }

    private static boolean isHostEntry(String name) {
        return name.equals(CudaDevice.HOST_OPERATIONS) || name.equals(CudaDevice.HOST_WAIT);
    }
}
