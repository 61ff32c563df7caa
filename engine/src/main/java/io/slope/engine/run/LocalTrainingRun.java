package io.slope.engine.run;

import io.slope.engine.backend.Backend;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.InvalidCorpusException;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.export.HfExport;
import io.slope.engine.export.SlopeExport;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.parallel.Collective;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;

/**
 * A whole training run in this process, without services (what `slope train` runs). The run folder holds the resolved
 * {@code spec.json}, the prepared {@code dataset/} (token shards), {@code checkpoints/} and, once finished, the exports
 * {@code hf/} and {@code slope/} (docs/formats.md). Checkpoints: one at step 0, every {@code checkpointEvery} steps and
 * at the end. {@link #resume} continues from the newest checkpoint that verifies, exactly as if the run had never
 * stopped.
 */
public final class LocalTrainingRun {
    public static final String SPEC_FILE = "spec.json";
    public static final String DATASET_DIR = "dataset";
    public static final String HF_EXPORT_DIR = "hf";
    public static final String SLOPE_EXPORT_DIR = "slope";

    /**
     * The outcome. {@code tokensPerSecond} counts training tokens over training time (evaluation excluded); the four
     * validation losses are those of {@link TrainingSession.FinalEvaluation}, and the export folders; null when the
     * run stopped early. {@code ranks}: how many data-parallel ranks trained this last stretch; {@code trainLoss} is
     * its last step's loss, null when it trained none (a resume after the last step only evaluates and exports).
     */
    public record Summary(String name, String mode, int steps, long trainTokens, Double trainLoss,
            double tokensPerSecond, double seconds, String backend, int ranks, String runDir, Double valLossSparse,
            Double valLossAdapters, Double valLossMerged, Double valLossInferenceForm, String hfExport,
            String slopeExport) {
        /** Whether the run trained all its steps and wrote its exports; false when it stopped early. */
        public boolean finished() {
            return hfExport != null;
        }
    }

    /**
     * How a caller asks a run to stop early (Ctrl-C): {@link #requested} is asked after every step, and every rank
     * stops after the first step at which any rank's says so, with a checkpoint there. The run says when its training loop
     * begins (its session is open, a checkpoint committed) and ends, because a request outside the loop cannot wait for
     * a step: the caller decides what it means there. A request seen when the loop ends skips the final evaluation and
     * the exports (a resume does them).
     */
    public interface Stop {
        Stop NEVER = () -> false;

        boolean requested();

        /** The training loop begins: the session is open, its newest checkpoint committed. */
        default void trainingBegins() {}

        /** The training loop has ended after {@code stepsDone} of {@code totalSteps}, its last checkpoint committed. */
        default void trainingEnded(int stepsDone, int totalSteps) {}
    }

    private LocalTrainingRun() {}

    /**
     * Starts a new run in {@code runDir}, which must not hold one yet.
     *
     * @param baseDir folder that relative corpus paths resolve against (the spec file's folder)
     */
    public static Summary start(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener)
            throws IOException {
        return start(spec, baseDir, runDir, listener, Integer.MAX_VALUE, Stop.NEVER);
    }

    /** As {@link #start(ResolvedSpec, Path, Path, TrainingSession.Listener)}, stopping early when {@code stop} asks. */
    public static Summary start(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener,
            Stop stop)
            throws IOException {
        return start(spec, baseDir, runDir, listener, Integer.MAX_VALUE, stop);
    }

    /** As {@link #start}, but pauses after {@code stopAfter} steps with a checkpoint there, to be resumed later. */
    public static Summary start(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener,
            int stopAfter) throws IOException {
        return start(spec, baseDir, runDir, listener, stopAfter, Stop.NEVER);
    }

    private static Summary start(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener,
            int stopAfter, Stop stop) throws IOException {
        Texts texts = readTexts(spec, baseDir, runDir, listener);
        boolean created = Files.notExists(runDir);
        LocalCheckpointStore store = new LocalCheckpointStore(runDir);
        try (Dataset dataset = prepareDataset(spec, texts, runDir)) {
            return train(spec, dataset, runDir, store, listener, stopAfter, stop, null, Collective.single());
        } catch (IOException | RuntimeException e) {
            deleteIfUnstarted(runDir, created);
            throw e;
        }
    }

    /**
     * A new run in {@code runDir} up to its first step: the tokenized dataset and the resolved spec, no checkpoint
     * (what the data-parallel launcher does once before its ranks {@link #trainRank} it).
     */
    public static void prepare(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener)
            throws IOException {
        Texts texts = readTexts(spec, baseDir, runDir, listener);
        boolean created = Files.notExists(runDir);
        try (Dataset dataset = prepareDataset(spec, texts, runDir)) {
            listener.onInfo("dataset: " + dataset.train().length() + " train / " + dataset.validation().length()
                    + " held-out tokens in " + runDir.resolve(DATASET_DIR));
        } catch (IOException | RuntimeException e) {
            deleteIfUnstarted(runDir, created);
            throw e;
        }
    }

    /**
     * A run that failed before its first checkpoint holds nothing worth resuming: leave no folder that would block the
     * same --out next time. A folder that existed before ({@code created} false) is never deleted. It is renamed away
     * first, then deleted: a thread still preparing the run (a signal's handler removes the folder while the data is
     * tokenized) can then add nothing under it, where it could while the folder was walked and deleted.
     */
    public static void deleteIfUnstarted(Path runDir, boolean created) throws IOException {
        if (created && new LocalCheckpointStore(runDir).committedSteps().isEmpty()) {
            Path removed = runDir.resolveSibling("." + runDir.getFileName() + ".removed-" + UUID.randomUUID());
            try {
                DurableFiles.moveAtomically(runDir, removed);
            } catch (NoSuchFileException gone) {
                return;
            }
            DurableFiles.deleteRecursively(removed);
        }
    }

    /** The text a new run reads: {@code data.corpus}, and {@code data.validation} when the spec gives it, else null. */
    private record Texts(Corpus corpus, Corpus heldOut) {}

    private static Texts readTexts(ResolvedSpec spec, Path baseDir, Path runDir, TrainingSession.Listener listener)
            throws IOException {
        if (Files.exists(runDir.resolve(SPEC_FILE))) {
            throw new IllegalArgumentException("--out: " + runDir + " already holds a run; continue it with --resume "
                    + runDir + " or choose another --out");
        }
        Corpus corpus = readCorpus("data.corpus", spec.data().corpus(), baseDir);
        listener.onInfo("corpus: " + corpus.description());
        if (!spec.data().heldOutFiles()) {
            return new Texts(corpus, null);
        }
        Corpus heldOut = readCorpus("data.validation", spec.data().validation(), baseDir);
        listener.onInfo("held-out files (data.validation): " + heldOut.description());
        return new Texts(corpus, heldOut);
    }

    /** The corpus of one spec field's paths, resolved against {@code baseDir}; a bad path names the field. */
    private static Corpus readCorpus(String field, List<String> paths, Path baseDir) throws IOException {
        try {
            return Corpus.read(paths.stream().map(p -> baseDir.resolve(p).normalize()).toList());
        } catch (InvalidCorpusException e) {
            throw new IllegalArgumentException(field + ": " + e.getMessage(), e);
        }
    }

    private static Dataset prepareDataset(ResolvedSpec spec, Texts texts, Path runDir) throws IOException {
        Files.createDirectories(runDir);
        String tokenizer = spec.data().tokenizer();
        Path directory = runDir.resolve(DATASET_DIR);
        Dataset dataset;
        if (texts.heldOut() == null) {
            dataset = Dataset.prepare(texts.corpus(), Tokenizers.forCorpus(tokenizer, texts.corpus()),
                    spec.data().valFraction(), Dataset.DEFAULT_TOKENS_PER_SHARD, directory);
        } else {
            try {
                dataset = Dataset.prepare(texts.corpus(), texts.heldOut(),
                        Tokenizers.forCorpus(tokenizer, texts.corpus(), texts.heldOut()),
                        Dataset.DEFAULT_TOKENS_PER_SHARD, directory);
            } catch (InvalidCorpusException e) {
                throw new IllegalArgumentException("data.validation: " + e.getMessage(), e);
            }
        }
        try {
            Files.writeString(runDir.resolve(SPEC_FILE), RunSpecCodec.toJson(spec));
        } catch (IOException | RuntimeException e) {
            dataset.close();
            throw e;
        }
        return dataset;
    }

    /** Continues the run in {@code runDir} from its newest checkpoint that verifies. */
    public static Summary resume(Path runDir, TrainingSession.Listener listener) throws IOException {
        return resume(runDir, listener, Stop.NEVER);
    }

    /** As {@link #resume(Path, TrainingSession.Listener)}, stopping early when {@code stop} asks. */
    public static Summary resume(Path runDir, TrainingSession.Listener listener, Stop stop) throws IOException {
        ResolvedSpec spec = resumableSpec(runDir);
        try (Dataset dataset = Dataset.open(runDir.resolve(DATASET_DIR))) {
            return train(spec, dataset, runDir, new LocalCheckpointStore(runDir), listener, Integer.MAX_VALUE, stop,
                    null, Collective.single());
        }
    }

    /**
     * The resolved spec of the run in {@code runDir}, checked to be resumable: it has a committed checkpoint and is not
     * finished and exported already.
     */
    public static ResolvedSpec resumableSpec(Path runDir) throws IOException {
        if (!Files.isRegularFile(runDir.resolve(SPEC_FILE))) {
            throw new IllegalArgumentException("--resume: " + runDir + " holds no run (no " + SPEC_FILE + ")");
        }
        ResolvedSpec spec = spec(runDir);
        var committed = new LocalCheckpointStore(runDir).committedSteps();
        if (committed.isEmpty()) {
            throw new IllegalArgumentException("--resume: " + runDir + " has no committed checkpoint");
        }
        if (committed.getLast() >= spec.training().steps() && exported(runDir)) {
            throw alreadyFinished(runDir, spec.training().steps());
        }
        return spec;
    }

    /** The resolved spec of the run {@link #prepare} or an earlier run left in {@code runDir}. */
    public static ResolvedSpec spec(Path runDir) throws IOException {
        return RunSpecCodec.parseResolved(Files.readString(runDir.resolve(SPEC_FILE)));
    }

    /**
     * One rank of a data-parallel run of {@code runDir} (made by {@link #prepare}, or any run there to resume): every
     * rank restores the newest committed checkpoint (or rank 0 commits step 0) and trains its share of each step; rank
     * 0 alone writes checkpoints, evaluates, exports and returns the summary, the other ranks return null.
     *
     * @param backend opened for {@code spec}, the one whose {@link Backend#collectives()} made
     *     {@code collective}; the session owns and closes it
     * @param stop this rank's stop request; the ranks agree on the step to stop after
     */
    public static Summary trainRank(ResolvedSpec spec, Path runDir, Backend backend,
            Collective collective, TrainingSession.Listener listener, Stop stop) throws IOException {
        Dataset dataset;
        try {
            dataset = Dataset.open(runDir.resolve(DATASET_DIR));
        } catch (IOException | RuntimeException e) {
            backend.close();
            throw e;
        }
        try (dataset) {
            return train(spec, dataset, runDir, new LocalCheckpointStore(runDir), listener, Integer.MAX_VALUE,
                    stop, backend, collective);
        }
    }

    private static boolean exported(Path runDir) {
        return Files.exists(runDir.resolve(HF_EXPORT_DIR)) && Files.exists(runDir.resolve(SLOPE_EXPORT_DIR));
    }

    private static IllegalArgumentException alreadyFinished(Path runDir, int steps) {
        return new IllegalArgumentException("--resume: " + runDir + " already finished all " + steps
                + " steps and holds its exports");
    }

    private static Summary train(ResolvedSpec spec, Dataset dataset, Path runDir, CheckpointStore store,
            TrainingSession.Listener listener, int stopAfter, Stop stop, Backend backend,
            Collective collective) throws IOException {
        long start = System.nanoTime();
        String writer = "slope-train/" + ProcessHandle.current().pid();
        Path hf = runDir.resolve(HF_EXPORT_DIR);
        Path slope = runDir.resolve(SLOPE_EXPORT_DIR);
        try (TrainingSession session = TrainingSession.open(spec, dataset, store, writer, listener, backend,
                collective)) {
            if (session.stepsDone() >= session.totalSteps() && exported(runDir)) {
                throw alreadyFinished(runDir, session.totalSteps());
            }
            // A run stopped after its last step but before its exports resumes straight into them.
            TrainingSession.ChunkResult chunk;
            stop.trainingBegins();
            try {
                chunk = session.trainUntil(stopAfter, stop::requested);
            } finally {
                stop.trainingEnded(session.stepsDone(), session.totalSteps());
            }
            if (collective.rank() != 0) {
                return null;
            }
            double tokensPerSecond = chunk.trainSeconds() > 0 ? chunk.trainTokens() / chunk.trainSeconds() : 0;
            TrainingSession.FinalEvaluation result = null;
            // A stop asked for during the last step leaves the final evaluation and the exports to a resume.
            if (chunk.finished() && !stop.requested()) {
                result = session.finish();
                listener.onInfo(String.format("val_loss: sparse %.4f, with adapters %.4f, dense export %.4f, "
                        + "inference form %.4f", result.valLossSparse(), result.valLossAdapters(),
                        result.valLossMerged(), result.valLossInferenceForm()));
                export(session.model().config(), dataset.tokenizer(), result, hf, slope);
                listener.onInfo("exports: " + hf + " (Hugging Face, dense fp32), " + slope + " (sparse + adapters)");
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            GptModel model = session.model();
            Double trainLoss = Double.isNaN(chunk.lastLoss()) ? null : chunk.lastLoss(); // no step in this stretch
            return new Summary(spec.name(), model.config().mode().wireName(), session.totalSteps(),
                    chunk.trainTokens(), trainLoss, tokensPerSecond, seconds, model.backend().name(),
                    collective.worldSize(), runDir.toString(), result == null ? null : result.valLossSparse(),
                    result == null ? null : result.valLossAdapters(), result == null ? null : result.valLossMerged(),
                    result == null ? null : result.valLossInferenceForm(), result == null ? null : hf.toString(),
                    result == null ? null : slope.toString());
        }
    }

    /** Writes both exports; one left by an earlier attempt is complete (they are staged, then renamed) and kept. */
    private static void export(GptConfig config, Tokenizer tokenizer, TrainingSession.FinalEvaluation result,
            Path hf, Path slope) throws IOException {
        if (!Files.exists(hf)) {
            HfExport.write(hf, config, result.denseExport(), tokenizer);
        }
        if (!Files.exists(slope)) {
            SlopeExport.write(slope, config, tokenizer, result.model());
        }
    }
}
