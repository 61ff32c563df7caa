package io.slope.cli;

import io.slope.cuda.CudaBackendProvider;
import io.slope.cuda.GemmBench;
import io.slope.cuda.InferBench;
import io.slope.cuda.ScalingBench;
import io.slope.cuda.StepBench;
import io.slope.spec.BackendChoice;
import io.slope.spec.Mode;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code slope bench}: the GPU benchmarks of bench/NOTES.md. Each prints one JSON line per measurement and writes the
 * same lines to {@code <out>/<bench>-<UTC time>.jsonl}; numbers come from benchmarks, never from timed tests.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "GPU benchmarks (CUDA backend; step and infer also on the CPU): per-GEMM dense vs 2:4, whole "
                + "training steps, inference (prefill and KV-cache decoding), data-parallel scaling.",
        subcommands = {BenchCommand.Gemm.class, BenchCommand.Step.class, BenchCommand.Infer.class,
                BenchCommand.Scaling.class})
public final class BenchCommand {

    abstract static class GpuBench implements Callable<Integer> {
        @Option(names = "--out", description = "Folder for the results file (default: ${DEFAULT-VALUE}).",
                defaultValue = "bench/results")
        Path out;

        @Option(names = "--results", description = "Append to this file instead of <out>/<bench>-<UTC time>.jsonl "
                + "(several runs, PyTorch's too, into one file).")
        Path results;

        /** This subcommand: its name names the results file. */
        @Spec
        CommandSpec spec;

        abstract void run() throws Exception;

        /** Whether this run needs the CUDA backend (checked before anything is written). */
        boolean needsCuda() {
            return true;
        }

        /** Checks the options that picocli cannot, before anything is written. */
        void validate() {}

        @Override
        public Integer call() throws Exception {
            validate();
            Optional<String> unavailable = needsCuda() ? new CudaBackendProvider().unavailableReason()
                    : Optional.empty();
            if (unavailable.isPresent()) {
                throw new IllegalArgumentException("the cuda backend is not available here: " + unavailable.get());
            }
            Path results = this.results != null ? this.results : out.resolve(spec.name() + "-"
                    + LocalDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmmss"))
                    + ".jsonl");
            Files.createDirectories(results.toAbsolutePath().getParent());
            PrintStream console = System.out;
            try (OutputStream file = Files.newOutputStream(results, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND)) {
                System.setOut(new PrintStream(new JsonLinesTee(console, file), true, StandardCharsets.UTF_8));
                run();
            } finally {
                System.setOut(console);
            }
            console.println("results: " + results);
            return 0;
        }
    }

    @Command(name = "gemm", mixinStandardHelpOptions = true,
            description = "One linear layer's GEMMs, dense bf16 (cuBLASLt) vs 2:4 (cuSPARSELt), forward and dX.")
    static final class Gemm extends GpuBench {
        @Option(names = "--tokens", description = "Rows of X (batch × sequence), default ${DEFAULT-VALUE}.",
                defaultValue = "8192")
        int tokens;

        @Parameters(paramLabel = "DOUTxDIN", arity = "1..*",
                description = "Weight shapes, e.g. 2304x768 3072x768 768x3072 (GPT-2 small's).")
        List<String> shapes;

        @Override
        void run() {
            for (String shape : shapes) {
                if (!shape.matches("\\d+x\\d+")) {
                    throw new IllegalArgumentException("shape '" + shape + "' is not DOUTxDIN, e.g. 3072x768");
                }
            }
            List<String> args = new ArrayList<>(List.of(Integer.toString(tokens)));
            args.addAll(shapes);
            GemmBench.main(args.toArray(String[]::new));
        }
    }

    /** A benchmark of whole-model work: a preset or custom shape, a backend and the commit measured. */
    abstract static class ModelBench extends GpuBench {
        @Option(names = "--model", defaultValue = "gpt2-124M",
                description = "gpt2-124M, gpt2-350M, gpt2-774M, gpt2-1558M, d2560, or custom (with --layers, --heads, "
                        + "--d-model); default ${DEFAULT-VALUE}.")
        String model;

        @Option(names = "--layers", description = "Custom model only.")
        Integer layers;

        @Option(names = "--heads", description = "Custom model only.")
        Integer heads;

        @Option(names = "--d-model", description = "Custom model only.")
        Integer dModel;

        @Option(names = "--seq-len", description = "Custom model only (default 1024).")
        Integer seqLen;

        @Option(names = "--vocab", description = "Custom model only (default 50304).")
        Integer vocab;

        @Option(names = "--backend", defaultValue = "cuda", description = "cuda or cpu (default ${DEFAULT-VALUE}).")
        String backend;

        @Option(names = "--threads", defaultValue = "0", description = "CPU backend threads (0: every core).")
        int threads;

        @Option(names = "--commit", defaultValue = "${env:SLOPE_COMMIT:-unknown}",
                description = "The commit measured, for the results (default: $SLOPE_COMMIT).")
        String commit;

        @Override
        boolean needsCuda() {
            return BackendChoice.CUDA.wireName().equals(backend);
        }

        StepBench.Shape shape() {
            boolean shapeGiven = layers != null || heads != null || dModel != null || seqLen != null || vocab != null;
            if (!model.equals("custom")) {
                StepBench.Shape preset = StepBench.PRESETS.get(model);
                if (preset == null) {
                    throw new IllegalArgumentException("--model: unknown '" + model + "'; allowed: "
                            + String.join(", ", StepBench.PRESETS.keySet()) + ", custom");
                }
                if (shapeGiven) {
                    throw new IllegalArgumentException("--layers, --heads, --d-model, --seq-len and --vocab are for "
                            + "--model custom; " + model + " has its own shape");
                }
                return preset;
            }
            List<String> missing = new ArrayList<>();
            if (layers == null) {
                missing.add("--layers");
            }
            if (heads == null) {
                missing.add("--heads");
            }
            if (dModel == null) {
                missing.add("--d-model");
            }
            if (!missing.isEmpty()) {
                throw new IllegalArgumentException("--model custom needs " + String.join(", ", missing));
            }
            return new StepBench.Shape("custom", layers, heads, dModel, seqLen == null ? 1024 : seqLen,
                    vocab == null ? 50304 : vocab);
        }
    }

    @Command(name = "step", mixinStandardHelpOptions = true,
            description = "Whole optimizer steps of the production Trainer on synthetic data "
                    + "(bench/NOTES.md protocols).")
    static final class Step extends ModelBench {
        @Option(names = "--protocol", defaultValue = "b",
                description = "a: 64 micro-batches per optimizer step, b: one (default ${DEFAULT-VALUE}).")
        String protocol;

        @Option(names = "--batch", defaultValue = "8",
                description = "Sequences per micro-batch (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--warmup", defaultValue = "2", description = "Untimed steps first (default ${DEFAULT-VALUE}).")
        int warmup;

        @Option(names = "--steps", defaultValue = "5",
                description = "Timed steps; their median is reported (default ${DEFAULT-VALUE}).")
        int steps;

        @Parameters(paramLabel = "MODE", arity = "1..*",
                description = "dense, sparse-no-double-prune or slope, optionally :REFRESH (column-mask refresh).")
        List<String> modes;

        private StepBench.Setup setup;

        @Override
        void validate() {
            setup = new StepBench.Setup(shape(), batch, protocol(), warmup, steps, backend, threads, commit);
            modes.forEach(mode -> Mode.fromWire(mode.split(":")[0]));
        }

        @Override
        void run() {
            for (String mode : modes) {
                System.out.println(StepBench.measure(setup, mode).toJson());
            }
        }

        private StepBench.Protocol protocol() {
            return switch (protocol) {
                case "a" -> StepBench.Protocol.A;
                case "b" -> StepBench.Protocol.B;
                default -> throw new IllegalArgumentException("--protocol: '" + protocol + "' is not a or b");
            };
        }
    }

    @Command(name = "infer", mixinStandardHelpOptions = true,
            description = "Inference through the production model: prefill of full contexts and KV-cache decoding "
                    + "(one token per sequence, logits downloaded as slope sample does), dense vs the SLoPe model's "
                    + "inference form.")
    static final class Infer extends ModelBench {
        @Option(names = "--prefill-batch", defaultValue = "8",
                description = "Full contexts per prefill (default ${DEFAULT-VALUE}).")
        int prefillBatch;

        @Option(names = "--decode-batch", split = ",", defaultValue = "1,8,16",
                description = "Sequences decoded at once, each timed (default ${DEFAULT-VALUE}).")
        List<Integer> decodeBatches;

        @Option(names = "--prompt", defaultValue = "128",
                description = "Prompt tokens before decoding (default ${DEFAULT-VALUE}).")
        int prompt;

        @Option(names = "--tokens", defaultValue = "64",
                description = "Timed decoding steps; their median is reported (default ${DEFAULT-VALUE}).")
        int tokens;

        @Option(names = "--warmup", defaultValue = "3",
                description = "Untimed prefills and decoding steps first (default ${DEFAULT-VALUE}).")
        int warmup;

        @Option(names = "--repeats", defaultValue = "5",
                description = "Timed prefills; their median is reported (default ${DEFAULT-VALUE}).")
        int repeats;

        @Parameters(paramLabel = "MODE", arity = "1..*", description = "dense or slope.")
        List<String> modes;

        private InferBench.Setup setup;

        @Override
        void validate() {
            setup = new InferBench.Setup(shape(), prefillBatch, decodeBatches, prompt, tokens, warmup, repeats,
                    backend, threads, commit);
            modes.forEach(InferBench::mode);
        }

        @Override
        void run() {
            for (String mode : modes) {
                InferBench.measure(setup, mode).forEach(m -> System.out.println(m.toJson()));
            }
        }
    }

    @Command(name = "scaling", mixinStandardHelpOptions = true,
            description = "Data-parallel weak scaling: one rank per GPU, one micro-batch per rank per step.")
    static final class Scaling extends GpuBench {
        @Option(names = "--preset", defaultValue = "gpt2-medium", description = "Model shape, default ${DEFAULT-VALUE}.")
        String preset;

        @Option(names = "--mode", defaultValue = "slope", description = "dense, sparse-no-double-prune or slope[:REFRESH].")
        String mode;

        @Option(names = "--batch", defaultValue = "8", description = "Sequences per rank per step.")
        int batch;

        @Option(names = "--steps", defaultValue = "5", description = "Timed steps after two warm-up steps.")
        int steps;

        @Option(names = "--ranks", split = ",", defaultValue = "1,2", description = "Rank counts, e.g. 1,2,4.")
        List<Integer> ranks;

        @Override
        void run() throws Exception {
            List<String> args = new ArrayList<>(List.of(preset, mode, Integer.toString(batch), Integer.toString(steps)));
            ranks.forEach(r -> args.add(Integer.toString(r)));
            ScalingBench.main(args.toArray(String[]::new));
        }
    }

    /** Echoes everything to the console and keeps the JSON lines (the measurements) for the results file. */
    private static final class JsonLinesTee extends OutputStream {
        private final PrintStream console;
        private final OutputStream file;
        private final java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();

        JsonLinesTee(PrintStream console, OutputStream file) {
            this.console = console;
            this.file = file;
        }

        @Override
        public void write(int b) throws IOException {
            console.write(b);
            line.write(b);
            if (b == '\n') {
                if (line.toString(StandardCharsets.UTF_8).startsWith("{")) {
                    line.writeTo(file);
                    file.flush();
                }
                line.reset();
            }
        }
    }
}
