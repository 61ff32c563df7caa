package io.slope.engine.run;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.DataLoader;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.data.ValidationWindows;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.train.Evaluator;
import io.slope.engine.train.Trainer;
import io.slope.engine.train.TrainingCheckpoints;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A whole training run in this process, without services (what `slope train` runs). The run folder holds the resolved
 * {@code spec.json}, the prepared {@code dataset/} (token shards) and {@code checkpoints/}: a step-0 checkpoint, one
 * every {@code checkpointEvery} steps and one at the end. {@link #resume} continues from the newest checkpoint that
 * verifies, exactly as if the run had never stopped.
 */
public final class LocalTrainingRun {
    public static final String SPEC_FILE = "spec.json";
    public static final String DATASET_DIR = "dataset";

    /** Progress callbacks, on the training thread. */
    public interface Listener {
        void onInfo(String line);

        void onStep(Trainer.StepStats stats, int totalSteps);

        void onEval(int step, double valLoss);
    }

    /** The outcome; {@code tokensPerSecond} counts training tokens over training time (evaluation excluded). */
    public record Summary(String name, String mode, int steps, long trainTokens, double trainLoss, double valLoss,
            double tokensPerSecond, double seconds, String backend, String runDir) {}

    private LocalTrainingRun() {}

    /**
     * Starts a new run in {@code runDir}, which must not hold one yet.
     *
     * @param baseDir folder that relative corpus paths resolve against (the spec file's folder)
     */
    public static Summary start(RunSpec spec, Path baseDir, Path runDir, Listener listener) throws IOException {
        return start(spec, baseDir, runDir, listener, Integer.MAX_VALUE);
    }

    /** As {@link #start}, but pauses after {@code stopAfter} steps with a checkpoint there, to be resumed later. */
    public static Summary start(RunSpec spec, Path baseDir, Path runDir, Listener listener, int stopAfter)
            throws IOException {
        if (Files.exists(runDir.resolve(SPEC_FILE))) {
            throw new IllegalArgumentException("--out: " + runDir + " already holds a run; continue it with --resume "
                    + runDir + " or choose another --out");
        }
        Corpus corpus = Corpus.read(spec.data().corpus().stream().map(p -> baseDir.resolve(p).normalize()).toList());
        listener.onInfo("corpus: " + corpus.description());
        Files.createDirectories(runDir);
        try (Dataset dataset = Dataset.prepare(corpus, Tokenizers.forCorpus(spec.data().tokenizer(), corpus),
                spec.data().valFraction(), Dataset.DEFAULT_TOKENS_PER_SHARD, runDir.resolve(DATASET_DIR))) {
            Files.writeString(runDir.resolve(SPEC_FILE), RunSpecCodec.toJson(spec));
            return train(spec, dataset, runDir, new LocalCheckpointStore(runDir), Optional.empty(), listener,
                    stopAfter);
        }
    }

    /** Continues the run in {@code runDir} from its newest checkpoint that verifies. */
    public static Summary resume(Path runDir, Listener listener) throws IOException {
        Path specFile = runDir.resolve(SPEC_FILE);
        if (!Files.isRegularFile(specFile)) {
            throw new IllegalArgumentException("--resume: " + runDir + " holds no run (no " + SPEC_FILE + ")");
        }
        RunSpec spec = RunSpecCodec.parseResolved(Files.readString(specFile));
        CheckpointStore store = new LocalCheckpointStore(runDir);
        Optional<LoadedCheckpoint> latest = store.loadLatest();
        if (latest.isEmpty()) {
            throw new IllegalArgumentException("--resume: " + runDir + " has no committed checkpoint");
        }
        for (var skipped : latest.get().skipped()) {
            // A newer checkpoint that does not verify is deleted, so training can commit that step again.
            listener.onInfo("skipped checkpoint " + skipped.step() + " (" + skipped.reason() + "); deleting it");
            store.delete(skipped.step());
        }
        try (Dataset dataset = Dataset.open(runDir.resolve(DATASET_DIR))) {
            return train(spec, dataset, runDir, store, latest, listener, Integer.MAX_VALUE);
        }
    }

    private static Summary train(RunSpec spec, Dataset dataset, Path runDir, CheckpointStore store,
            Optional<LoadedCheckpoint> from, Listener listener, int stopAfter) throws IOException {
        int vocab = dataset.tokenizer().vocabSize();
        // Refuse before allocating when the CPU training state cannot fit in this JVM's heap.
        RunSpecs.validateForCpu(spec, vocab, Runtime.getRuntime().maxMemory()).ifPresent(error -> {
            throw new InvalidSpecException(List.of(error));
        });
        GptConfig config = GptConfig.of(spec, vocab);
        ValidationWindows heldOut = validationWindows(spec, dataset, config);
        String writer = "slope-train/" + ProcessHandle.current().pid();
        try (Backend backend = backend(spec)) {
            GptModel model;
            long startStep = 0;
            long adamSteps = 0;
            if (from.isPresent()) {
                TrainingCheckpoints.Resumed resumed = TrainingCheckpoints.restore(backend, config,
                        from.get().checkpoint());
                model = resumed.model();
                startStep = resumed.stepsDone();
                adamSteps = resumed.adamSteps();
            } else {
                DType dtype = spec.precision().equals("fp64") ? DType.F64 : DType.F32;
                model = GptModel.fromDenseWeights(backend, config, dtype,
                        GptModel.initialWeights(config, spec.training().seed()));
            }
            listener.onInfo(String.format("%s: %d-layer d=%d GPT-2, %,d parameters, vocab %d (%s), mode %s, %s, %s; "
                    + "%,d train / %,d held-out tokens%s", spec.name(), config.layers(), config.dModel(),
                    config.parameterCount(), vocab, spec.data().tokenizer(), config.mode().wireName(),
                    spec.precision(), backend.name(), dataset.train().length(), dataset.validation().length(),
                    startStep > 0 ? "; resumed after step " + startStep : ""));
            Trainer trainer = new Trainer(model, spec, new DataLoader(dataset.train(), spec.training().seed(),
                    config.seqLen(), spec.training().batchSize(), spec.training().gradAccum()));
            trainer.optimizer().restoreStepsTaken(adamSteps);
            int steps = spec.training().steps();
            if (startStep >= steps) {
                throw new IllegalArgumentException("--resume: " + runDir + " already finished all " + steps
                        + " steps");
            }
            int lastStep = Math.min(steps, stopAfter);
            int checkpointEvery = spec.checkpointEvery();
            if (from.isEmpty()) {
                store.write(TrainingCheckpoints.capture(model, trainer.optimizer(), 0, spec), writer);
            }
            long start = System.nanoTime();
            double trainSeconds = 0;
            long trainTokens = 0;
            double lastLoss = Double.NaN;
            double valLoss = Double.NaN;
            int evalEvery = spec.eval().every();
            for (int step = (int) startStep; step < lastStep; step++) {
                Trainer.StepStats s = trainer.step(step);
                trainSeconds += s.seconds();
                trainTokens += s.tokens();
                lastLoss = s.loss();
                if (!Double.isFinite(lastLoss)) {
                    throw new IllegalStateException("training diverged at step " + step + " (loss " + lastLoss
                            + "); lower optimizer.lr or raise optimizer.warmupSteps");
                }
                listener.onStep(s, steps);
                int done = step + 1;
                if (done == steps || (evalEvery > 0 && done % evalEvery == 0)) {
                    valLoss = Evaluator.validationLoss(model, heldOut, spec.training().batchSize());
                    listener.onEval(done, valLoss);
                }
                if (done == lastStep || (checkpointEvery > 0 && done % checkpointEvery == 0)) {
                    store.write(TrainingCheckpoints.capture(model, trainer.optimizer(), done, spec), writer);
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            return new Summary(spec.name(), config.mode().wireName(), steps, trainTokens, lastLoss, valLoss,
                    trainSeconds > 0 ? trainTokens / trainSeconds : 0, seconds, backend.name(), runDir.toString());
        }
    }

    /** Built before training, so a held-out split too short for one window fails at once, naming the field. */
    private static ValidationWindows validationWindows(RunSpec spec, Dataset dataset, GptConfig config) {
        int maxWindows = spec.eval().maxWindows();
        try {
            return maxWindows > 0 ? ValidationWindows.first(dataset.validation(), config.seqLen(), maxWindows)
                    : ValidationWindows.all(dataset.validation(), config.seqLen());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("data.valFraction: " + e.getMessage());
        }
    }

    private static Backend backend(RunSpec spec) {
        return switch (spec.backend()) {
            case "cpu", "auto" -> new CpuBackend(spec.threads());
            default -> throw new IllegalArgumentException("backend: \"" + spec.backend() + "\" is not available in "
                    + "this build; use \"cpu\" or \"auto\"");
        };
    }
}
