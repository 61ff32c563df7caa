package io.slope.spec;

import java.util.List;
import java.util.Objects;

/**
 * A {@link RunSpec} with every default filled in and every rule checked: what {@link RunSpecs#resolve} returns and all
 * code after it (engine, workers, workflows, CLI, API) takes. Nothing is null; backend, precision, mode and preset are
 * enums. It is stored and sent as the JSON of {@link #toRunSpec()} (docs/spec.md), which resolves back to an equal one.
 */
public record ResolvedSpec(
        String name,
        Model model,
        Sparsity sparsity,
        Adapters adapters,
        Optimizer optimizer,
        Training training,
        Data data,
        Eval eval,
        int checkpointEvery,
        BackendChoice backend,
        Precision precision,
        int threads) {

    public ResolvedSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(sparsity, "sparsity");
        Objects.requireNonNull(adapters, "adapters");
        Objects.requireNonNull(optimizer, "optimizer");
        Objects.requireNonNull(training, "training");
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(eval, "eval");
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(precision, "precision");
    }

    public ResolvedSpec withModel(Model newModel) {
        return new ResolvedSpec(name, newModel, sparsity, adapters, optimizer, training, data, eval, checkpointEvery,
                backend, precision, threads);
    }

    public ResolvedSpec withAdapters(Adapters newAdapters) {
        return new ResolvedSpec(name, model, sparsity, newAdapters, optimizer, training, data, eval, checkpointEvery,
                backend, precision, threads);
    }

    public ResolvedSpec withTraining(Training newTraining) {
        return new ResolvedSpec(name, model, sparsity, adapters, optimizer, newTraining, data, eval, checkpointEvery,
                backend, precision, threads);
    }

    public ResolvedSpec withThreads(int newThreads) {
        return new ResolvedSpec(name, model, sparsity, adapters, optimizer, training, data, eval, checkpointEvery,
                backend, precision, newThreads);
    }

    /** The JSON shape: every field given, {@code data} with exactly one of validation and valFraction. */
    public RunSpec toRunSpec() {
        return new RunSpec(name,
                model.toRunSpec(),
                new RunSpec.Sparsity(sparsity.mode().wireName(), sparsity.n(), sparsity.m(),
                        sparsity.columnMaskRefresh(), sparsity.denseFirstQkv()),
                new RunSpec.Adapters(adapters.start(), adapters.rank()),
                new RunSpec.Optimizer(optimizer.lr(), optimizer.beta1(), optimizer.beta2(), optimizer.eps(),
                        optimizer.weightDecay(), optimizer.gradClip(), optimizer.warmupSteps(),
                        optimizer.minLrRatio()),
                new RunSpec.Training(training.steps(), training.batchSize(), training.gradAccum(), training.seed()),
                new RunSpec.Data(data.corpus(), data.heldOutFiles() ? data.validation() : null, data.tokenizer(),
                        data.heldOutFiles() ? null : data.valFraction()),
                new RunSpec.Eval(eval.every(), eval.maxWindows()),
                checkpointEvery, backend.wireName(), precision.wireName(), threads);
    }

    /** The GPT-2 shape; {@code preset} is the one named, the others may override its fields. */
    public record Model(Preset preset, int layers, int heads, int dModel, int seqLen) {
        public Model {
            Objects.requireNonNull(preset, "preset");
        }

        public RunSpec.Model toRunSpec() {
            return new RunSpec.Model(preset.wireName(), layers, heads, dModel, seqLen);
        }
    }

    public record Sparsity(Mode mode, int n, int m, int columnMaskRefresh, boolean denseFirstQkv) {
        public Sparsity {
            Objects.requireNonNull(mode, "mode");
        }
    }

    public record Adapters(double start, int rank) {}

    public record Optimizer(
            double lr,
            double beta1,
            double beta2,
            double eps,
            double weightDecay,
            double gradClip,
            int warmupSteps,
            double minLrRatio) {}

    public record Training(int steps, int batchSize, int gradAccum, long seed) {}

    /**
     * The held-out split is either the files of {@code validation} or the last {@code valFraction} of the corpus:
     * {@code validation} is empty when it is the fraction, {@code valFraction} 0 when it is the files.
     */
    public record Data(List<String> corpus, List<String> validation, String tokenizer, double valFraction) {
        public Data {
            corpus = List.copyOf(corpus);
            validation = List.copyOf(validation);
            Objects.requireNonNull(tokenizer, "tokenizer");
        }

        /** Whether {@code validation} names the held-out files (else the split is {@code valFraction}). */
        public boolean heldOutFiles() {
            return !validation.isEmpty();
        }
    }

    public record Eval(int every, int maxWindows) {}
}
