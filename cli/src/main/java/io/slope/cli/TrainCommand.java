package io.slope.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.engine.train.Trainer;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
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
    @Option(names = "--spec", required = true, paramLabel = "FILE", description = "Run spec JSON (docs/spec.md).")
    Path specFile;

    @Option(names = "--steps", paramLabel = "N", description = "Override training.steps.")
    Integer steps;

    @Option(names = "--threads", paramLabel = "N", description = "Override threads (0 = all cores).")
    Integer threads;

    @Option(names = "--log-every", paramLabel = "N", description = "Print every N steps (default: about 50 lines).")
    Integer logEvery;

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(specFile)) {
            System.err.println("--spec: " + specFile + " is not a file");
            return 2;
        }
        RunSpec spec;
        try {
            RunSpec parsed = RunSpecCodec.parse(Files.readString(specFile));
            spec = RunSpecCodec.parseResolved(RunSpecCodec.toJson(withOverrides(parsed)));
        } catch (InvalidSpecException e) {
            System.err.println(specFile + ": " + e.getMessage());
            return 2;
        }
        int total = spec.training().steps();
        int every = logEvery != null ? Math.max(1, logEvery) : Math.max(1, total / 50);
        Path baseDir = specFile.toAbsolutePath().getParent();
        LocalTrainingRun.Summary summary;
        try {
            summary = run(spec, every, baseDir);
        } catch (InvalidSpecException e) {
            System.err.println(specFile + ": " + e.getMessage());
            return 2;
        }
        System.out.println(new ObjectMapper().writeValueAsString(summary));
        return 0;
    }

    private static LocalTrainingRun.Summary run(RunSpec spec, int every, Path baseDir) throws java.io.IOException {
        return LocalTrainingRun.run(spec, baseDir, new LocalTrainingRun.Listener() {
            @Override
            public void onStart(String description) {
                System.out.println(description);
            }

            @Override
            public void onStep(Trainer.StepStats s, int totalSteps) {
                if ((s.step() + 1) % every == 0 || s.step() == 0 || s.step() == totalSteps - 1) {
                    System.out.printf("step %d/%d  loss %.4f  lr %.2e  grad-norm %.3f  %,.0f tok/s%n", s.step() + 1,
                            totalSteps, s.loss(), s.lr(), s.gradNorm(), s.tokens() / s.seconds());
                }
            }

            @Override
            public void onEval(int step, double valLoss) {
                System.out.printf("eval step %d  val_loss %.4f  ppl %.2f%n", step, valLoss, Math.exp(valLoss));
            }
        });
    }

    private RunSpec withOverrides(RunSpec s) {
        RunSpec.Training t = s.training() == null ? new RunSpec.Training(null, null, null, null) : s.training();
        RunSpec.Training training = steps == null ? s.training()
                : new RunSpec.Training(steps, t.batchSize(), t.gradAccum(), t.seed());
        return new RunSpec(s.name(), s.model(), s.sparsity(), s.adapters(), s.optimizer(), training, s.data(),
                s.eval(), s.checkpointEvery(), s.backend(), s.precision(), threads != null ? threads : s.threads());
    }
}
