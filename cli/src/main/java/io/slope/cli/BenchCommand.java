package io.slope.cli;

import io.slope.cuda.CudaBackendProvider;
import io.slope.cuda.GemmBench;
import io.slope.cuda.ScalingBench;
import io.slope.cuda.StepBench;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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
        description = "GPU benchmarks (CUDA backend): per-GEMM dense vs 2:4, whole training steps, data-parallel scaling.",
        subcommands = {BenchCommand.Gemm.class, BenchCommand.Step.class, BenchCommand.Scaling.class})
public final class BenchCommand {

    abstract static class GpuBench implements Callable<Integer> {
        @Option(names = "--out", description = "Folder for the results file (default: ${DEFAULT-VALUE}).",
                defaultValue = "bench/results")
        Path out;

        /** This subcommand: its name names the results file. */
        @Spec
        CommandSpec spec;

        abstract void run() throws Exception;

        @Override
        public Integer call() throws Exception {
            Optional<String> unavailable = new CudaBackendProvider().unavailableReason();
            if (unavailable.isPresent()) {
                throw new IllegalArgumentException("the cuda backend is not available here: " + unavailable.get());
            }
            Files.createDirectories(out);
            Path results = out.resolve(spec.name() + "-"
                    + LocalDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmmss"))
                    + ".jsonl");
            PrintStream console = System.out;
            try (OutputStream file = Files.newOutputStream(results)) {
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

    @Command(name = "step", mixinStandardHelpOptions = true,
            description = "Whole training steps of a GPT-2 shape (bench/NOTES.md protocols: --accum 1 is (b), 64 is (a)).")
    static final class Step extends GpuBench {
        @Option(names = "--layers", required = true)
        int layers;

        @Option(names = "--heads", required = true)
        int heads;

        @Option(names = "--d-model", required = true)
        int dModel;

        @Option(names = "--seq-len", defaultValue = "1024")
        int seqLen;

        @Option(names = "--vocab", defaultValue = "50304")
        int vocab;

        @Option(names = "--batch", defaultValue = "8")
        int batch;

        @Option(names = "--accum", defaultValue = "1")
        int accum;

        @Option(names = "--steps", defaultValue = "5", description = "Timed steps after two warm-up steps.")
        int steps;

        @Parameters(paramLabel = "MODE", arity = "1..*",
                description = "DENSE, SPARSE_NO_DOUBLE_PRUNE or SLOPE, optionally :REFRESH (column-mask refresh).")
        List<String> modes;

        @Override
        void run() {
            List<String> args = new ArrayList<>(List.of(layers, heads, dModel, seqLen, vocab, batch, accum, steps)
                    .stream().map(String::valueOf).toList());
            args.addAll(modes);
            StepBench.main(args.toArray(String[]::new));
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
