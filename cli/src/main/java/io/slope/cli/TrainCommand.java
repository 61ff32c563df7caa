package io.slope.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import io.slope.engine.backend.Backends;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code slope train}: a whole run in this process, no services. The last line printed is a JSON summary. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Train a model from a run spec on this machine (no services). Prints per-step loss and tokens/s;"
                + " the last line is a JSON summary. Per-step metrics go to <run dir>/metrics.jsonl.",
            "With --ranks N > 1 it starts N rank processes (data parallel, one GPU each on cuda) and waits for them;"
                + " when one fails it stops the others and prints how to resume. Ctrl-C stops every rank at once, as"
                + " it stops a one-rank run: the steps since the last periodic checkpoint (checkpointEvery) are lost,"
                + " and --resume continues from that checkpoint on any rank count."})
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--spec", paramLabel = "FILE", description = "Run spec JSON (docs/spec.md).")
    Path specFile;

    @Option(names = "--out", paramLabel = "DIR",
            description = "Run folder for the dataset and checkpoints (default: runs/<spec name>, or -2, -3, … when "
                    + "taken).")
    Path out;

    @Option(names = "--resume", paramLabel = "DIR",
            description = "Continue the run in DIR from its newest checkpoint that verifies (no --spec needed).")
    Path resume;

    @Option(names = "--steps", paramLabel = "N", description = "Override training.steps.")
    Integer steps;

    @Option(names = "--seed", paramLabel = "N", description = "Override training.seed.")
    Long seed;

    @Option(names = "--threads", paramLabel = "N", description = "Override threads (0 = all cores).")
    Integer threads;

    @Option(names = "--log-every", paramLabel = "N", description = "Print every N steps (default: about 50 lines).")
    Integer logEvery;

    @Option(names = "--ranks", paramLabel = "N", defaultValue = "1",
            description = "Data-parallel ranks, one process each (default: ${DEFAULT-VALUE}); must divide "
                    + "training.gradAccum. A run resumes on any rank count.")
    int ranks;

    @Override
    public Integer call() throws Exception {
        if ((specFile == null) == (resume == null)) {
            System.err.println("give either --spec FILE (a new run) or --resume DIR (continue one)");
            return 2;
        }
        if (ranks < 1) {
            System.err.println("--ranks: must be at least 1 (got " + ranks + ")");
            return 2;
        }
        if (resume != null) {
            if (ranks > 1) {
                return launch(resume, false, resume.toString());
            }
            return report(() -> {
                try (MetricsLog listener = new MetricsLog(resume, ProgressPrinter.forStdout(logEvery))) {
                    return LocalTrainingRun.resume(resume, listener);
                }
            }, resume.toString());
        }
        if (!Files.isRegularFile(specFile)) {
            System.err.println("--spec: " + specFile + " is not a file");
            return 2;
        }
        if (ranks > 1) {
            return launch(null, true, specFile.toString());
        }
        return report(() -> {
            RunSpec spec = RunSpecs.resolveAndValidate(withOverrides(RunSpecCodec.parse(Files.readString(specFile))));
            Path runDir = out != null ? out : freshRunDir(spec.name());
            try (MetricsLog listener = new MetricsLog(runDir, ProgressPrinter.forStdout(logEvery))) {
                return LocalTrainingRun.start(spec, specFile.toAbsolutePath().getParent(), runDir, listener);
            }
        }, specFile.toString());
    }

    /**
     * {@code --ranks N > 1}: checks the rank count against the spec before anything is written, prepares a new run's
     * folder once (dataset, spec.json), then supervises the ranks.
     */
    private int launch(Path resumeDir, boolean newRun, String source) throws Exception {
        return refusingBadInput(() -> {
            RunSpec spec = newRun
                    ? RunSpecs.resolveAndValidate(withOverrides(RunSpecCodec.parse(Files.readString(specFile))))
                    : LocalTrainingRun.resumableSpec(resumeDir);
            Path runDir = newRun ? (out != null ? out : freshRunDir(spec.name())) : resumeDir;
            String error = ranksError(ranks, spec);
            if (error != null) {
                System.err.println(error);
                return 2;
            }
            Backends.unavailableReason(spec).ifPresent(reason -> {
                throw new IllegalArgumentException(reason);
            });
            if (spec.backend().equals("cuda") || spec.backend().equals("auto")) {
                RankLauncher.device(System.getenv("CUDA_VISIBLE_DEVICES"), ranks - 1, ranks); // enough GPUs named
            }
            boolean created = newRun && Files.notExists(runDir);
            if (newRun) {
                LocalTrainingRun.prepare(spec, specFile.toAbsolutePath().getParent(), runDir,
                        ProgressPrinter.forStdout(logEvery));
            }
            String heapError = RankLauncher.cpuHeapError(spec, runDir, ranks);
            if (heapError != null) {
                LocalTrainingRun.deleteIfUnstarted(runDir, created);
                System.err.println(heapError);
                return 2;
            }
            return new RankLauncher(runDir.toAbsolutePath(), ranks, spec, logEvery, created, System.out, System.err)
                    .run();
        }, source);
    }

    /**
     * Why {@code ranks} ranks cannot train {@code spec}, naming the flag and the fix; null when they can. Each rank
     * takes every ranks-th micro-batch of a step (io.slope.engine.train.Trainer), so ranks must divide
     * training.gradAccum.
     */
    static String ranksError(int ranks, RunSpec spec) {
        int gradAccum = spec.training().gradAccum();
        if (gradAccum % ranks == 0) {
            return null;
        }
        StringBuilder fitting = new StringBuilder();
        for (int d = 1; d <= gradAccum; d++) {
            if (gradAccum % d == 0) {
                fitting.append(fitting.isEmpty() ? "" : ", ").append(d);
            }
        }
        int batch = spec.training().batchSize();
        String sameTokens = batch % ranks == 0 ? " (batchSize " + batch / ranks + " with gradAccum " + gradAccum * ranks
                + " keeps the tokens per step)" : "";
        return "--ranks: " + ranks + " ranks cannot share training.gradAccum = " + gradAccum
                + " micro-batches per step (rank r takes micro-batches r, r + " + ranks + ", …); use --ranks " + fitting
                + ", or set training.gradAccum in the spec to a multiple of " + ranks + sameTokens;
    }

    /** runs/NAME, or runs/NAME-2, -3, … when earlier runs of the same spec are there (an explicit --out is strict). */
    private static Path freshRunDir(String name) {
        Path dir = Path.of("runs", name);
        for (int n = 2; Files.exists(dir); n++) {
            dir = Path.of("runs", name + "-" + n);
        }
        return dir;
    }

    private interface RunAction {
        LocalTrainingRun.Summary run() throws Exception;
    }

    /** Runs, prints the JSON summary as the last line; bad input becomes exit code 2 with the message. */
    private static int report(RunAction action, String source) throws Exception {
        return refusingBadInput(() -> {
            printSummary(action.run());
            return 0;
        }, source);
    }

    /** The exit code of {@code action}; bad input (a spec, a flag, a folder) becomes 2 with the message. */
    private static int refusingBadInput(Callable<Integer> action, String source) throws Exception {
        try {
            return action.call();
        } catch (InvalidSpecException e) {
            System.err.println(source + ": " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException | java.io.UncheckedIOException e) {
            System.err.println(e.getMessage());
            return 2;
        }
    }

    /** The summary as the last line of stdout, after an empty one. */
    static void printSummary(LocalTrainingRun.Summary summary) throws java.io.IOException {
        System.out.println();
        System.out.println(new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                .writeValueAsString(summary));
    }

    private RunSpec withOverrides(RunSpec s) {
        RunSpec.Training t = s.training() == null ? new RunSpec.Training(null, null, null, null) : s.training();
        RunSpec.Training training = steps == null && seed == null ? s.training()
                : new RunSpec.Training(steps != null ? steps : t.steps(), t.batchSize(), t.gradAccum(),
                        seed != null ? seed : t.seed());
        return new RunSpec(s.name(), s.model(), s.sparsity(), s.adapters(), s.optimizer(), training, s.data(),
                s.eval(), s.checkpointEvery(), s.backend(), s.precision(), threads != null ? threads : s.threads());
    }
}
