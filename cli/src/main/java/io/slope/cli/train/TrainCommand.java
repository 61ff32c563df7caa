package io.slope.cli.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import io.slope.engine.backend.Backends;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.spec.DataParallel;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code slope train}: a whole run in this process, no services. The last line printed is a JSON summary. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Train a model from a run spec on this machine (no services). Prints per-step loss and tokens/s;"
                + " the last line is a JSON summary. Per-step metrics go to <run dir>/metrics.jsonl.",
            "Ctrl-C (or SIGTERM) stops the run after the current step with a checkpoint there, prints the step and"
                + " the --resume command and exits 130 (143 for SIGTERM); a second Ctrl-C quits at once, losing the"
                + " steps since the last checkpoint. Before the first checkpoint and during the final evaluation and"
                + " exports the first Ctrl-C quits at once (a new run's folder is removed; a resume redoes the"
                + " evaluation and exports).",
            "With --ranks N > 1 it starts N rank processes (data parallel, one GPU each on cuda) and waits for them;"
                + " when one fails it stops the others and prints how to resume. Ctrl-C stops every rank after the"
                + " same step (rank 0 writes the checkpoint), waiting up to --stop-grace seconds before it kills them;"
                + " --resume continues on any rank count."})
public final class TrainCommand implements Callable<Integer> {
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

    @Option(names = "--stop-grace", paramLabel = "SECONDS", defaultValue = "120",
            description = "With --ranks N > 1: how long the ranks have to reach their agreed stop and checkpoint after "
                    + "Ctrl-C or SIGTERM before they are killed (default: ${DEFAULT-VALUE}).")
    long stopGraceSeconds;

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
        if (stopGraceSeconds < 0) {
            System.err.println("--stop-grace: must be at least 0 seconds (got " + stopGraceSeconds + ")");
            return 2;
        }
        if (resume != null) {
            if (ranks > 1) {
                return launch(resume, false, resume.toString());
            }
            return refusingBadInput(() -> trainHere(resume, false, stop -> {
                try (MetricsLog listener = new MetricsLog(resume, ProgressPrinter.forStdout(logEvery))) {
                    return LocalTrainingRun.resume(resume, listener, stop);
                }
            }), resume.toString());
        }
        if (!Files.isRegularFile(specFile)) {
            System.err.println("--spec: " + specFile + " is not a file");
            return 2;
        }
        if (ranks > 1) {
            return launch(null, true, specFile.toString());
        }
        return refusingBadInput(() -> {
            ResolvedSpec spec = RunSpecs.resolve(withOverrides(RunSpecCodec.parse(Files.readString(specFile))));
            Path runDir = out != null ? out : freshRunDir(spec.name());
            return trainHere(runDir, Files.notExists(runDir), stop -> {
                try (MetricsLog listener = new MetricsLog(runDir, ProgressPrinter.forStdout(logEvery))) {
                    return LocalTrainingRun.start(spec, specFile.toAbsolutePath().getParent(), runDir, listener, stop);
                }
            });
        }, specFile.toString());
    }

    /**
     * {@code --ranks N > 1}: checks the rank count against the spec before anything is written, prepares a new run's
     * folder once (dataset, spec.json), then supervises the ranks.
     */
    private int launch(Path resumeDir, boolean newRun, String source) throws Exception {
        return refusingBadInput(() -> {
            ResolvedSpec spec = newRun
                    ? RunSpecs.resolve(withOverrides(RunSpecCodec.parse(Files.readString(specFile))))
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
            if (spec.backend().mayUseGpu()) {
                RankLauncher.device(System.getenv("CUDA_VISIBLE_DEVICES"), ranks - 1, ranks); // enough GPUs named
            }
            boolean created = newRun && Files.notExists(runDir);
            RankLauncher launcher = new RankLauncher(runDir.toAbsolutePath(), ranks, spec, logEvery, created,
                    Duration.ofSeconds(stopGraceSeconds), System.out, System.err);
            launcher.installStop(); // a signal while the dataset is prepared quits and removes the new folder
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
            return launcher.run();
        }, source);
    }

    /** Why {@code ranks} ranks cannot train {@code spec}, naming the flag and the fix; or null. */
    static String ranksError(int ranks, ResolvedSpec spec) {
        int gradAccum = spec.training().gradAccum();
        if (DataParallel.fits(ranks, gradAccum)) {
            return null;
        }
        int batch = spec.training().batchSize();
        String sameTokens = batch % ranks == 0 ? " (batchSize " + batch / ranks + " with gradAccum " + gradAccum * ranks
                + " keeps the tokens per step)" : "";
        return "--ranks: " + DataParallel.whyNot(ranks, gradAccum) + "; use --ranks "
                + DataParallel.fittingRanks(gradAccum, gradAccum) + ", or set training.gradAccum in the spec to a "
                + "multiple of " + ranks + sameTokens;
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
        LocalTrainingRun.Summary run(GracefulStop stop) throws Exception;
    }

    /**
     * Runs one rank in this process, Ctrl-C and SIGTERM stopping it gracefully ({@link GracefulStop}), and prints the
     * JSON summary as the last line; a run that stopped early prints where instead and exits 128 + the signal.
     *
     * @param created whether the run folder is new: a signal before its first checkpoint removes it
     */
    private static int trainHere(Path runDir, boolean created, RunAction action) throws Exception {
        GracefulStop stop = GracefulStop.install(System.err, "slope train", "", new GracefulStop.Actions() {
            @Override
            public String quit(int exitCode) {
                return resumeHint(runDir, created, 1);
            }

            @Override
            public void cleanUp() {
                String failure = GracefulStop.deleteIfUnstarted(runDir, created);
                if (failure != null) {
                    System.err.println("slope train: " + failure);
                }
            }
        });
        LocalTrainingRun.Summary summary = action.run(stop);
        if (!summary.finished()) {
            stop.say(stoppedMessage(stop.stepsDone(), stop.totalSteps(), runDir, 1)); // below a progress bar too
            return stop.exitCode();
        }
        printSummary(summary);
        return 0;
    }

    /** What a run that stopped at a request says (after "slope train: "): where, and the command that continues it. */
    static String stoppedMessage(long step, int steps, Path runDir, int ranks) {
        return "stopped" + (ranks > 1 ? " all " + ranks + " ranks" : "") + " after step " + step + " of "
                + steps + " (checkpoint committed); resume with: slope train --resume " + runDir
                + (ranks > 1 ? " --ranks " + ranks : "");
    }

    /**
     * How to go on after a run ended early: from its last committed checkpoint, or, with none, from the start ({@code
     * created}: the new run folder is removed, by the caller).
     */
    static String resumeHint(Path runDir, boolean created, int ranks) {
        List<Long> committed;
        try {
            committed = new LocalCheckpointStore(runDir).committedSteps();
        } catch (IOException e) {
            return "Could not list the checkpoints in " + runDir + " (" + e.getMessage() + "); resume with: slope "
                    + "train --resume " + runDir;
        }
        if (committed.isEmpty()) {
            return "No checkpoint was committed" + (created ? " (the run folder is removed)" : "")
                    + "; start the run again with the same command.";
        }
        if (ranks == 1) {
            return "Resume from the last committed checkpoint (step " + committed.getLast() + "):\n  slope train "
                    + "--resume " + runDir;
        }
        return "Resume from the last committed checkpoint (step " + committed.getLast() + "), on this or any rank "
                + "count that divides training.gradAccum (the checkpoint re-shards):\n  slope train --resume "
                + runDir + " --ranks " + ranks;
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
        return s.withTraining(training).withThreads(threads != null ? threads : s.threads());
    }
}
