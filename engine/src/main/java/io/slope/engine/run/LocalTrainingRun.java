package io.slope.engine.run;

import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.model.GptModel;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A whole training run in this process, without services (what `slope train` runs). The run folder holds the resolved
 * {@code spec.json}, the prepared {@code dataset/} (token shards) and {@code checkpoints/}: a step-0 checkpoint, one
 * every {@code checkpointEvery} steps and one at the end. {@link #resume} continues from the newest checkpoint that
 * verifies, exactly as if the run had never stopped.
 */
public final class LocalTrainingRun {
    public static final String SPEC_FILE = "spec.json";
    public static final String DATASET_DIR = "dataset";

    /**
     * The outcome. {@code tokensPerSecond} counts training tokens over training time (evaluation excluded); the four
     * validation losses are those of {@link TrainingSession.FinalEvaluation}, null when the run stopped early.
     */
    public record Summary(String name, String mode, int steps, long trainTokens, double trainLoss,
            double tokensPerSecond, double seconds, String backend, String runDir, Double valLossSparse,
            Double valLossAdapters, Double valLossMerged, Double valLossInferenceForm) {}

    private LocalTrainingRun() {}

    /**
     * Starts a new run in {@code runDir}, which must not hold one yet.
     *
     * @param baseDir folder that relative corpus paths resolve against (the spec file's folder)
     */
    public static Summary start(RunSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener) throws IOException {
        return start(spec, baseDir, runDir, listener, Integer.MAX_VALUE);
    }

    /** As {@link #start}, but pauses after {@code stopAfter} steps with a checkpoint there, to be resumed later. */
    public static Summary start(RunSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener, int stopAfter)
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
            return train(spec, dataset, runDir, new LocalCheckpointStore(runDir), listener, stopAfter);
        }
    }

    /** Continues the run in {@code runDir} from its newest checkpoint that verifies. */
    public static Summary resume(Path runDir, TrainingSession.Listener listener) throws IOException {
        Path specFile = runDir.resolve(SPEC_FILE);
        if (!Files.isRegularFile(specFile)) {
            throw new IllegalArgumentException("--resume: " + runDir + " holds no run (no " + SPEC_FILE + ")");
        }
        RunSpec spec = RunSpecCodec.parseResolved(Files.readString(specFile));
        CheckpointStore store = new LocalCheckpointStore(runDir);
        if (store.committedSteps().isEmpty()) {
            throw new IllegalArgumentException("--resume: " + runDir + " has no committed checkpoint");
        }
        try (Dataset dataset = Dataset.open(runDir.resolve(DATASET_DIR))) {
            return train(spec, dataset, runDir, store, listener, Integer.MAX_VALUE);
        }
    }

    private static Summary train(RunSpec spec, Dataset dataset, Path runDir, CheckpointStore store,
            TrainingSession.Listener listener, int stopAfter) throws IOException {
        long start = System.nanoTime();
        String writer = "slope-train/" + ProcessHandle.current().pid();
        try (TrainingSession session = TrainingSession.open(spec, dataset, store, writer, listener)) {
            if (session.stepsDone() >= session.totalSteps()) {
                throw new IllegalArgumentException("--resume: " + runDir + " already finished all "
                        + session.totalSteps() + " steps");
            }
            TrainingSession.ChunkResult chunk = session.trainUntil(stopAfter, () -> false);
            double tokensPerSecond = chunk.trainSeconds() > 0 ? chunk.trainTokens() / chunk.trainSeconds() : 0;
            TrainingSession.FinalEvaluation result = chunk.finished() ? session.finish() : null;
            double seconds = (System.nanoTime() - start) / 1e9;
            GptModel model = session.model();
            return new Summary(spec.name(), model.config().mode().wireName(), session.totalSteps(),
                    chunk.trainTokens(), chunk.lastLoss(), tokensPerSecond, seconds, model.backend().name(),
                    runDir.toString(), result == null ? null : result.valLossSparse(),
                    result == null ? null : result.valLossAdapters(), result == null ? null : result.valLossMerged(),
                    result == null ? null : result.valLossInferenceForm());
        }
    }
}
