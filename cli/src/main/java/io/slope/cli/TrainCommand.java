package io.slope.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
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
        description = "Train a model from a run spec on this machine (no services). Prints per-step loss and tokens/s;"
                + " the last line is a JSON summary.")
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

    @Override
    public Integer call() throws Exception {
        if ((specFile == null) == (resume == null)) {
            System.err.println("give either --spec FILE (a new run) or --resume DIR (continue one)");
            return 2;
        }
        if (resume != null) {
            return report(() -> LocalTrainingRun.resume(resume, ProgressPrinter.forStdout(logEvery)), resume.toString());
        }
        if (!Files.isRegularFile(specFile)) {
            System.err.println("--spec: " + specFile + " is not a file");
            return 2;
        }
        return report(() -> {
            RunSpec spec = RunSpecs.resolveAndValidate(withOverrides(RunSpecCodec.parse(Files.readString(specFile))));
            Path runDir = out != null ? out : freshRunDir(spec.name());
            return LocalTrainingRun.start(spec, specFile.toAbsolutePath().getParent(), runDir, ProgressPrinter.forStdout(logEvery));
        }, specFile.toString());
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
        try {
            LocalTrainingRun.Summary summary = action.run();
            System.out.println();
            System.out.println(new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                    .writeValueAsString(summary));
            return 0;
        } catch (InvalidSpecException e) {
            System.err.println(source + ": " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException | java.io.UncheckedIOException e) {
            System.err.println(e.getMessage());
            return 2;
        }
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
