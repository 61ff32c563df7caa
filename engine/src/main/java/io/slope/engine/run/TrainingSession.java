package io.slope.engine.run;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Backends;
import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.data.DataLoader;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.ValidationWindows;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.parallel.Collective;
import io.slope.engine.train.Evaluator;
import io.slope.engine.train.Trainer;
import io.slope.engine.train.TrainingCheckpoints;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.Precision;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecs;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * A model resident in memory while it trains, in chunks: the unit both `slope train` and the service's GPU worker run.
 * Opening restores the newest checkpoint that verifies (or initialises and commits step 0); {@link #trainUntil}
 * trains, evaluates and checkpoints, attaching the lazy adapters when the adapter phase begins; {@link #finish} merges
 * and evaluates the final model in its four forms (docs/method.md, "Merge and the inference form").
 *
 * <p>Data parallel: every rank opens a session on the same store with its {@link Collective}; all ranks restore the same
 * checkpoint (whole, so any rank count resumes it), train their slice of each step, and take part in each checkpoint's
 * capture; rank 0 alone writes checkpoints, evaluates and finishes.
 */
public final class TrainingSession implements AutoCloseable {
    /** Checkpoint-state key of the validation loss at the end of the sparse phase, so a resumed run still reports it. */
    private static final String VAL_LOSS_SPARSE = "valLossSparse";

    /** Progress callbacks, on the training thread; each ignores its event unless overridden. */
    public interface Listener {
        default void onInfo(String line) {}

        default void onStep(Trainer.StepStats stats, int totalSteps) {}

        /** A validation loss: {@code form} is "sparse" (end of the sparse phase) or "current". */
        default void onEval(int step, String form, double valLoss) {}
    }

    /** What a chunk did; {@code trainTokens}/{@code trainSeconds} count this chunk's training only. */
    public record ChunkResult(int stepsDone, boolean finished, long trainTokens, double trainSeconds, double lastLoss,
            long lastCheckpointStep) {}

    /**
     * The final model's validation losses, in fp32 (on a GPU that trains in bf16, on an fp32 copy of the model: {@link
     * Backends#openFp32Evaluation}): at the end of the sparse phase, the final model with dense adapters, its dense
     * export, and its inference form (A pruned); without adapters all four are the final model's.
     */
    public record FinalEvaluation(double valLossSparse, double valLossAdapters, double valLossMerged,
            double valLossInferenceForm, ModelSnapshot model, Map<String, double[]> denseExport) {}

    private final ResolvedSpec spec;
    private final CheckpointStore store;
    private final String writer;
    private final Listener listener;
    private final Collective collective;
    private final Backend backend;
    private final GptModel model;
    private final Trainer trainer;
    private final ValidationWindows heldOut;
    private int stepsDone;
    private Double valLossSparse;

    private TrainingSession(ResolvedSpec spec, CheckpointStore store, String writer, Listener listener,
            Collective collective, Backend backend, GptModel model, Trainer trainer, ValidationWindows heldOut,
            int stepsDone, Double valLossSparse) {
        this.spec = spec;
        this.collective = collective;
        this.store = store;
        this.writer = writer;
        this.listener = listener;
        this.backend = backend;
        this.model = model;
        this.trainer = trainer;
        this.heldOut = heldOut;
        this.stepsDone = stepsDone;
        this.valLossSparse = valLossSparse;
    }

    /**
     * Opens the run whose checkpoints {@code store} holds: from its newest verified checkpoint (newer ones that do not
     * verify are reported and deleted, so that training can commit those steps again), or from the seed's
     * initialisation with a step-0 checkpoint committed at once.
     *
     * @param writer who writes the checkpoints (e.g. activity id and attempt), recorded in each manifest
     */
    public static TrainingSession open(ResolvedSpec spec, Dataset dataset, CheckpointStore store, String writer,
            Listener listener) throws IOException {
        return open(spec, dataset, store, writer, listener, Collective.single());
    }

    /**
     * As {@link #open(ResolvedSpec, Dataset, CheckpointStore, String, Listener)}, as one rank of a data-parallel
     * group.
     */
    public static TrainingSession open(ResolvedSpec spec, Dataset dataset, CheckpointStore store, String writer,
            Listener listener, Collective collective) throws IOException {
        return open(spec, dataset, store, writer, listener, null, collective);
    }

    /**
     * As {@link #open(ResolvedSpec, Dataset, CheckpointStore, String, Listener, Collective)} on a backend the caller
     * opened already (a rank that rendezvoused through its {@link Backend#collectives()}); the session owns it from
     * here on and closes it, on failure too. A null backend is opened from the spec.
     */
    public static TrainingSession open(ResolvedSpec spec, Dataset dataset, CheckpointStore store, String writer,
            Listener listener, Backend opened, Collective collective) throws IOException {
        try {
            return openOn(spec, dataset, store, writer, listener, opened, collective);
        } catch (RuntimeException | IOException e) {
            if (opened != null) {
                opened.close();
            }
            throw e;
        }
    }

    private static TrainingSession openOn(ResolvedSpec spec, Dataset dataset, CheckpointStore store, String writer,
            Listener listener, Backend opened, Collective collective) throws IOException {
        int vocab = dataset.tokenizer().vocabSize();
        GptConfig config = GptConfig.of(spec, vocab);
        ValidationWindows heldOut = validationWindows(spec, dataset, config);
        Optional<LoadedCheckpoint> latest = Optional.empty();
        if (collective.rank() == 0) {
            latest = store.loadLatest();
            if (latest.isPresent()) {
                for (var skipped : latest.get().skipped()) {
                    listener.onInfo("skipped checkpoint " + skipped.step() + " (" + skipped.reason()
                            + "); deleting it");
                    store.delete(skipped.step());
                }
            }
        }
        // The other ranks read only after rank 0 has removed what does not verify, and must find the same step.
        double[] step0 = collective.broadcast(new double[] {latest.map(c -> (double) c.checkpoint().step())
                .orElse(-1.0)}, 0);
        if (collective.rank() != 0) {
            latest = store.loadLatest();
            long mine = latest.map(c -> c.checkpoint().step()).orElse(-1L);
            if (mine != (long) step0[0]) {
                throw new IllegalStateException("rank " + collective.rank() + " found checkpoint " + mine
                        + " but rank 0 restores " + (long) step0[0] + "; the ranks must share one checkpoint store");
            }
        }
        Backend backend = opened != null ? opened : Backends.open(spec);
        try {
            if (backend instanceof CpuBackend) {
                // Refuse before allocating when the CPU training state cannot fit in this JVM's heap.
                RunSpecs.validateForCpu(spec, vocab, Runtime.getRuntime().maxMemory()).ifPresent(error -> {
                    throw new InvalidSpecException(List.of(error));
                });
            }
            GptModel model;
            int stepsDone = 0;
            Double valLossSparse = null;
            TrainingCheckpoints.Resumed resumed = null;
            if (latest.isPresent()) {
                resumed = TrainingCheckpoints.restore(backend, config, latest.get().checkpoint());
                resumed.kernelSearchNotice().ifPresent(listener::onInfo);
                model = resumed.model();
                stepsDone = Math.toIntExact(resumed.stepsDone());
                if (resumed.state().hasNonNull(VAL_LOSS_SPARSE)) {
                    valLossSparse = resumed.state().get(VAL_LOSS_SPARSE).asDouble();
                }
            } else {
                DType dtype = spec.precision() == Precision.FP64 ? DType.F64 : DType.F32;
                model = GptModel.fromDenseWeights(backend, config, dtype,
                        GptModel.initialWeights(config, spec.training().seed()));
            }
            Trainer trainer = new Trainer(model, spec, new DataLoader(dataset.train(), spec.training().seed(),
                    config.seqLen(), spec.training().batchSize(), spec.training().gradAccum()), collective,
                    listener::onInfo);
            if (resumed != null) {
                resumed.restoreOptimizer(trainer.optimizer());
            }
            TrainingSession session = new TrainingSession(spec, store, writer, listener, collective, backend, model,
                    trainer, heldOut, stepsDone, valLossSparse);
            listener.onInfo(String.format("%s: %d-layer d=%d GPT-2, %,d parameters, vocab %d (%s), mode %s, %s, %s%s; "
                    + "%,d train / %,d held-out tokens%s", spec.name(), config.layers(), config.dModel(),
                    config.parameterCount(), vocab, spec.data().tokenizer(), config.mode().wireName(),
                    spec.precision().wireName(), backend.name(),
                    collective.worldSize() > 1 ? ", rank " + collective.rank() + " of " + collective.worldSize() : "",
                    dataset.train().length(), dataset.validation().length(),
                    stepsDone > 0 ? "; resumed after step " + stepsDone : ""));
            if (latest.isEmpty()) {
                session.checkpoint();
            }
            return session;
        } catch (RuntimeException | IOException e) {
            if (opened == null) {
                backend.close(); // a caller's backend is closed by the caller's side of open
            }
            throw e;
        }
    }

    public int stepsDone() {
        return stepsDone;
    }

    public int totalSteps() {
        return spec.training().steps();
    }

    /** The first step of the adapter phase; {@link #totalSteps} when the run adds no adapters. */
    public int adapterStartStep() {
        return trainer.adapterStartStep();
    }

    public GptModel model() {
        return model;
    }

    public Trainer trainer() {
        return trainer;
    }

    /**
     * Trains up to {@code stopStep} (capped at the run's steps) or until {@code stopRequested} says so between steps,
     * evaluating every {@code eval.every} steps, at the end of the sparse phase and at the end, and checkpointing every
     * {@code checkpointEvery} steps and where the chunk stops, so every chunk ends on a committed checkpoint.
     */
    public ChunkResult trainUntil(int stopStep, BooleanSupplier stopRequested) throws IOException {
        int steps = totalSteps();
        int last = Math.min(stopStep, steps);
        int evalEvery = spec.eval().every();
        int checkpointEvery = spec.checkpointEvery();
        long tokens = 0;
        double seconds = 0;
        double lastLoss = Double.NaN;
        long lastCheckpoint = -1;
        while (stepsDone < last) {
            int step = stepsDone;
            if (trainer.attachAdaptersIfDue(step)) {
                listener.onInfo(String.format("step %d: adapter phase, rank-%d adapters on every sparse layer",
                        step, model.adapterRank()));
            }
            Trainer.StepStats s = trainer.step(step);
            if (!Double.isFinite(s.loss())) {
                throw new IllegalStateException("training diverged at step " + step + " (loss " + s.loss()
                        + "); lower optimizer.lr or raise optimizer.warmupSteps");
            }
            tokens += s.tokens();
            seconds += s.seconds();
            lastLoss = s.loss();
            stepsDone = step + 1;
            listener.onStep(s, steps);
            if (collective.rank() == 0) {
                if (stepsDone == adapterStartStep() && stepsDone < steps) {
                    valLossSparse = fp32ValidationLoss();
                    listener.onEval(stepsDone, "sparse", valLossSparse);
                } else if (stepsDone == steps || (evalEvery > 0 && stepsDone % evalEvery == 0)) {
                    listener.onEval(stepsDone, "current", validationLoss());
                }
            }
            boolean stop = stepsDone == last || stopAgreed(stopRequested);
            if (stop || (checkpointEvery > 0 && stepsDone % checkpointEvery == 0)) {
                checkpoint();
                lastCheckpoint = stepsDone;
            }
            if (stop) {
                break;
            }
        }
        return new ChunkResult(stepsDone, stepsDone == steps, tokens, seconds, lastLoss, lastCheckpoint);
    }

    /** Whether any rank was asked to stop: every rank must stop after the same step. */
    private boolean stopAgreed(BooleanSupplier stopRequested) {
        double mine = stopRequested.getAsBoolean() ? 1 : 0;
        return (collective.worldSize() == 1 ? mine : collective.allReduceSum(new double[] {mine})[0]) > 0;
    }

    /** The current model's validation loss over the documented windows. */
    public double validationLoss() {
        return Evaluator.validationLoss(model, heldOut, evaluationBatch());
    }

    /**
     * Evaluation runs as many sequences at once as training does: {@code training.batchSize}, or fewer after the
     * device ran out of memory at it ({@link Trainer}).
     */
    private int evaluationBatch() {
        return trainer.sequencesPerPass();
    }

    /**
     * Evaluates the finished model in its four forms. The dense export and the inference form are built on this
     * backend next to the trained model and released afterwards.
     */
    public FinalEvaluation finish() {
        if (collective.rank() != 0) {
            throw new IllegalStateException("rank 0 finishes the run; rank " + collective.rank() + " has nothing to do");
        }
        if (stepsDone < totalSteps()) {
            throw new IllegalStateException("the run has trained " + stepsDone + " of " + totalSteps() + " steps");
        }
        ModelSnapshot snapshot = model.snapshot();
        GptConfig config = model.config();
        Map<String, double[]> dense = Merge.denseExport(config, snapshot);
        double finalLoss;
        double merged;
        double inferenceForm;
        Optional<Backend> fp32 = Backends.openFp32Evaluation(spec);
        try {
            Backend evaluation = fp32.orElse(backend);
            finalLoss = fp32.isPresent() ? validationLoss(evaluation, config, snapshot) : validationLoss();
            try (GptModel denseModel = GptModel.fromDenseWeights(evaluation, Merge.denseConfig(config), model.dtype(),
                    dense, GptModel.Use.INFERENCE)) {
                merged = Evaluator.validationLoss(denseModel, heldOut, evaluationBatch());
            }
            inferenceForm = model.hasAdapters()
                    ? validationLoss(evaluation, config, Merge.inferenceForm(config, snapshot)) : finalLoss;
        } finally {
            fp32.ifPresent(Backend::close);
        }
        double sparse = valLossSparse != null ? valLossSparse : finalLoss;
        return new FinalEvaluation(sparse, finalLoss, merged, inferenceForm, snapshot, dense);
    }

    /**
     * The current model's validation loss in fp32: on this backend, or, when it trains in a lower precision (the GPU's
     * bf16), on a copy of the model in the fp32 evaluation backend beside it ({@link Backends#openFp32Evaluation}).
     */
    private double fp32ValidationLoss() {
        Optional<Backend> fp32 = Backends.openFp32Evaluation(spec);
        if (fp32.isEmpty()) {
            return validationLoss();
        }
        try (Backend evaluation = fp32.get()) {
            return validationLoss(evaluation, model.config(), model.snapshot());
        }
    }

    /** The validation loss of {@code snapshot} restored on {@code evaluation}, released afterwards. */
    private double validationLoss(Backend evaluation, GptConfig config, ModelSnapshot snapshot) {
        try (GptModel copy = GptModel.restore(evaluation, config, model.dtype(), snapshot, GptModel.Use.INFERENCE)) {
            return Evaluator.validationLoss(copy, heldOut, evaluationBatch());
        }
    }

    private void checkpoint() throws IOException {
        Map<String, Double> extra = valLossSparse == null ? Map.of() : Map.of(VAL_LOSS_SPARSE, valLossSparse);
        Checkpoint checkpoint = TrainingCheckpoints.capture(model, trainer.optimizer(), collective, stepsDone, spec,
                extra);
        if (collective.rank() == 0) {
            store.write(checkpoint, writer);
        }
    }

    /** Built before training, so a held-out split too short for one window fails at once, naming the field. */
    private static ValidationWindows validationWindows(ResolvedSpec spec, Dataset dataset, GptConfig config) {
        int maxWindows = spec.eval().maxWindows();
        try {
            return maxWindows > 0 ? ValidationWindows.first(dataset.validation(), config.seqLen(), maxWindows)
                    : ValidationWindows.all(dataset.validation(), config.seqLen());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(spec.data().heldOutFiles()
                    ? "data.validation: " + e.getMessage() + "; list more or longer held-out files"
                    : "data.valFraction: " + e.getMessage() + "; raise data.valFraction or use more text");
        }
    }

    @Override
    public void close() {
        model.close();
        backend.close();
    }
}
