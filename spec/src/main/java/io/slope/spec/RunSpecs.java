package io.slope.spec;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.ToLongFunction;
import java.util.regex.Pattern;

/** Defaults, validation and the derived quantities of a spec (adapter rank and start step, warmup). */
public final class RunSpecs {
    public static final List<String> TOKENIZERS = List.of("char", "gpt2");
    public static final List<String> BACKENDS = WireName.names(BackendChoice.class);
    public static final List<String> PRECISIONS = WireName.names(Precision.class);
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    // Upper bounds (docs/spec.md): what one run may ask of a shared service, far above any preset. dModel keeps the
    // largest weight (4C x C) within one array; the checkpoint bound caps a run's checkpoint traffic.
    public static final int MAX_LAYERS = 256;
    public static final int MAX_D_MODEL = 16384;
    public static final int MAX_SEQ_LEN = 16384;
    public static final int MAX_STEPS = 10_000_000;
    public static final int MAX_BATCH_SIZE = 4096;
    public static final int MAX_GRAD_ACCUM = 4096;
    public static final int MAX_THREADS = 1024;
    public static final int MAX_CHECKPOINTS = 1000;
    public static final int MAX_CORPUS_ENTRIES = 64;

    /** GPT-2's byte-level BPE vocabulary, {@code data.tokenizer} "gpt2". */
    public static final int GPT2_VOCAB_SIZE = 50257;
    /**
     * The characters a check made before the corpus is read assumes for {@code data.tokenizer} "char", one token per
     * distinct code point (English text has about 100; the logits are a small part of a run's memory at any size).
     */
    public static final int CHAR_VOCAB_ASSUMED = 1024;

    private RunSpecs() {}

    /**
     * Fills every null field with its default (docs/spec.md), then validates; throws with every problem found. The one
     * way to a {@link ResolvedSpec}.
     */
    public static ResolvedSpec resolve(RunSpec spec) {
        RunSpec filled = withDefaults(spec);
        List<SpecError> errors = validate(filled);
        if (!errors.isEmpty()) {
            throw new InvalidSpecException(errors);
        }
        RunSpec.Model m = filled.model();
        RunSpec.Sparsity sp = filled.sparsity();
        RunSpec.Optimizer o = filled.optimizer();
        RunSpec.Training t = filled.training();
        RunSpec.Data d = filled.data();
        return new ResolvedSpec(filled.name(),
                new ResolvedSpec.Model(Preset.fromWire(m.preset()), m.layers(), m.heads(), m.dModel(), m.seqLen()),
                new ResolvedSpec.Sparsity(Mode.fromWire(sp.mode()), sp.n(), sp.m(), sp.columnMaskRefresh(),
                        sp.denseFirstQkv()),
                new ResolvedSpec.Adapters(filled.adapters().start(), filled.adapters().rank()),
                new ResolvedSpec.Optimizer(o.lr(), o.beta1(), o.beta2(), o.eps(), o.weightDecay(), o.gradClip(),
                        o.warmupSteps(), o.minLrRatio()),
                new ResolvedSpec.Training(t.steps(), t.batchSize(), t.gradAccum(), t.seed()),
                new ResolvedSpec.Data(d.corpus(), d.validation() == null ? List.of() : d.validation(), d.tokenizer(),
                        d.validation() == null ? d.valFraction() : 0),
                new ResolvedSpec.Eval(filled.eval().every(), filled.eval().maxWindows()),
                filled.checkpointEvery(), WireName.parse(BackendChoice.class, filled.backend(), "backend"),
                WireName.parse(Precision.class, filled.precision(), "precision"), filled.threads());
    }

    /** The spec with every null field set to its default; shape fields stay null under an unknown preset. */
    static RunSpec withDefaults(RunSpec s) {
        RunSpec.Model m = s.model() == null ? new RunSpec.Model(null, null, null, null, null) : s.model();
        String presetName = or(m.preset(), Preset.TINY.wireName());
        Preset preset = Preset.fromWire(presetName);
        // An unknown preset supplies nothing; validate() reports it together with every other problem.
        RunSpec.Model pm = preset == null ? new RunSpec.Model(presetName, null, null, null, null)
                : preset.model().toRunSpec();
        RunSpec.Model model = new RunSpec.Model(presetName, or(m.layers(), pm.layers()), or(m.heads(), pm.heads()),
                or(m.dModel(), pm.dModel()), or(m.seqLen(), pm.seqLen()));

        RunSpec.Sparsity sp = s.sparsity() == null ? new RunSpec.Sparsity(null, null, null, null, null) : s.sparsity();
        RunSpec.Sparsity sparsity = new RunSpec.Sparsity(or(sp.mode(), Mode.SLOPE.wireName()), or(sp.n(), 2),
                or(sp.m(), 4), or(sp.columnMaskRefresh(), 1), or(sp.denseFirstQkv(), true));

        RunSpec.Training t = s.training() == null ? new RunSpec.Training(null, null, null, null) : s.training();
        RunSpec.Training training = new RunSpec.Training(or(t.steps(), 1000), or(t.batchSize(), 8),
                or(t.gradAccum(), 1), or(t.seed(), 1234L));

        RunSpec.Adapters a = s.adapters() == null ? new RunSpec.Adapters(null, null) : s.adapters();
        RunSpec.Adapters adapters = new RunSpec.Adapters(or(a.start(), 0.99),
                or(a.rank(), model.dModel() == null ? null : defaultAdapterRank(model.dModel())));

        RunSpec.Optimizer o = s.optimizer() == null
                ? new RunSpec.Optimizer(null, null, null, null, null, null, null, null) : s.optimizer();
        int steps = training.steps();
        RunSpec.Optimizer optimizer = new RunSpec.Optimizer(or(o.lr(), 6e-4), or(o.beta1(), 0.9),
                or(o.beta2(), 0.95), or(o.eps(), 1e-8), or(o.weightDecay(), 0.1), or(o.gradClip(), 1.0),
                or(o.warmupSteps(), steps / 100), or(o.minLrRatio(), 0.0));

        RunSpec.Data d = s.data() == null ? new RunSpec.Data(null, null, null, null) : s.data();
        // Held-out files replace the held-out fraction, so the fraction's default applies only without them.
        RunSpec.Data data = new RunSpec.Data(d.corpus(), d.validation(), or(d.tokenizer(), "char"),
                d.validation() == null ? or(d.valFraction(), 0.1) : d.valFraction());

        RunSpec.Eval e = s.eval() == null ? new RunSpec.Eval(null, null) : s.eval();
        RunSpec.Eval eval = new RunSpec.Eval(or(e.every(), 250), or(e.maxWindows(), 0));

        return new RunSpec(or(s.name(), "run"), model, sparsity, adapters, optimizer, training, data, eval,
                or(s.checkpointEvery(), 500), or(s.backend(), BackendChoice.AUTO.wireName()),
                or(s.precision(), Precision.FP32.wireName()), or(s.threads(), 0));
    }

    static List<SpecError> validate(RunSpec s) {
        List<SpecError> errors = new ArrayList<>();
        if (!NAME.matcher(s.name()).matches()) {
            errors.add(new SpecError("name", "must be 1-64 characters of letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit (got '" + s.name() + "')"));
        }
        RunSpec.Model m = s.model();
        if (Preset.fromWire(m.preset()) == null) {
            errors.add(new SpecError("model.preset", "unknown preset '" + m.preset() + "'; allowed: "
                    + Preset.wireNames()));
        }
        // Shape fields are null only under an unknown preset (reported above); 0 below means "unknown or invalid",
        // so the cross-field checks skip them instead of piling up follow-on errors.
        positive(errors, "model.layers", m.layers());
        atMost(errors, "model.layers", m.layers(), MAX_LAYERS);
        positive(errors, "model.heads", m.heads());
        positive(errors, "model.dModel", m.dModel());
        atMost(errors, "model.dModel", m.dModel(), MAX_D_MODEL);
        if (m.seqLen() != null && m.seqLen() < 2) {
            errors.add(new SpecError("model.seqLen", "must be at least 2 (got " + m.seqLen() + ")"));
        }
        atMost(errors, "model.seqLen", m.seqLen(), MAX_SEQ_LEN);
        int heads = m.heads() == null ? 0 : Math.max(0, m.heads());
        int dModel = m.dModel() == null || m.dModel() > MAX_D_MODEL ? 0 : Math.max(0, m.dModel());
        if (heads > 0 && dModel > 0 && dModel % heads != 0) {
            errors.add(new SpecError("model.dModel", "must be divisible by model.heads=" + heads + " (got "
                    + dModel + "); e.g. " + roundUp(dModel, heads)));
        }

        RunSpec.Sparsity sp = s.sparsity();
        Mode mode = null;
        if (!Mode.wireNames().contains(sp.mode())) {
            errors.add(new SpecError("sparsity.mode", "unknown mode '" + sp.mode() + "'; allowed: " + Mode.wireNames()));
        } else {
            mode = Mode.fromWire(sp.mode());
        }
        if (sp.m() < 2 || sp.m() > 32) {
            errors.add(new SpecError("sparsity.m", "must be between 2 and 32 (got " + sp.m() + "); the default is 4"));
        } else if (sp.n() < 1 || sp.n() >= sp.m()) {
            errors.add(new SpecError("sparsity.n", "must satisfy 1 <= n < m=" + sp.m() + " (got " + sp.n()
                    + "); the default is 2 (2:4)"));
        }
        if (sp.columnMaskRefresh() < 1) {
            errors.add(new SpecError("sparsity.columnMaskRefresh",
                    "must be at least 1 (1 = refresh every optimizer step; got " + sp.columnMaskRefresh() + ")"));
        }
        if (mode != null && mode.sparse() && sp.m() >= 2 && dModel > 0 && dModel % sp.m() != 0) {
            errors.add(new SpecError("model.dModel", "every sparse layer's dimensions must be divisible by sparsity.m="
                    + sp.m() + "; dModel=" + dModel + " is not (try " + roundUp(dModel, lcm(sp.m(),
                    Math.max(1, heads))) + ")"));
        }

        RunSpec.Adapters a = s.adapters();
        if (!(a.start() > 0 && a.start() <= 1)) {
            errors.add(new SpecError("adapters.start", "must be in (0, 1]; 0.99 adds adapters for the last 1% of "
                    + "steps, 1 never adds them (got " + a.start() + ")"));
        }
        if (a.rank() != null && (a.rank() < 1 || (dModel > 0 && a.rank() > dModel))) {
            errors.add(new SpecError("adapters.rank", "must be between 1 and model.dModel=" + m.dModel() + " (got "
                    + a.rank() + ")"));
        }

        RunSpec.Optimizer o = s.optimizer();
        if (!(o.lr() > 0) || Double.isInfinite(o.lr())) {
            errors.add(new SpecError("optimizer.lr", "must be a positive finite number (got " + o.lr() + ")"));
        }
        unitInterval(errors, "optimizer.beta1", o.beta1());
        unitInterval(errors, "optimizer.beta2", o.beta2());
        // JSON numbers such as 1e400 parse to Infinity, so every unbounded number is also checked for finiteness.
        if (!(o.eps() > 0) || Double.isInfinite(o.eps())) {
            errors.add(new SpecError("optimizer.eps", "must be a positive finite number (got " + o.eps()
                    + "); the default is 1e-8"));
        }
        if (!(o.weightDecay() >= 0) || Double.isInfinite(o.weightDecay())) {
            errors.add(new SpecError("optimizer.weightDecay", "must be a finite number >= 0 (got " + o.weightDecay()
                    + "); the default is 0.1"));
        }
        if (!(o.gradClip() >= 0) || Double.isInfinite(o.gradClip())) {
            errors.add(new SpecError("optimizer.gradClip", "must be a finite number >= 0; 0 turns clipping off (got "
                    + o.gradClip() + ")"));
        }
        if (!(o.minLrRatio() >= 0 && o.minLrRatio() <= 1)) {
            errors.add(new SpecError("optimizer.minLrRatio", "must be in [0, 1] (got " + o.minLrRatio() + ")"));
        }

        RunSpec.Training t = s.training();
        positive(errors, "training.steps", t.steps());
        atMost(errors, "training.steps", t.steps(), MAX_STEPS);
        positive(errors, "training.batchSize", t.batchSize());
        atMost(errors, "training.batchSize", t.batchSize(), MAX_BATCH_SIZE);
        positive(errors, "training.gradAccum", t.gradAccum());
        atMost(errors, "training.gradAccum", t.gradAccum(), MAX_GRAD_ACCUM);
        if (o.warmupSteps() < 0 || (t.steps() > 0 && o.warmupSteps() >= t.steps())) {
            errors.add(new SpecError("optimizer.warmupSteps", "must be in [0, training.steps) = [0, " + t.steps()
                    + ") (got " + o.warmupSteps() + ")"));
        }

        RunSpec.Data d = s.data();
        pathList(errors, "data.corpus", d.corpus(), "must list at least one text file or folder, e.g. "
                + "[\"../shared/data/tinyshakespeare.txt\"]");
        if (d.validation() != null) {
            pathList(errors, "data.validation", d.validation(), "must list at least one text file or folder of "
                    + "held-out text, e.g. [\"val/\"], or be left out to hold out data.valFraction of data.corpus");
            for (int i = 0; i < d.validation().size(); i++) {
                int inCorpus = d.corpus() == null ? -1 : d.corpus().indexOf(d.validation().get(i));
                if (inCorpus >= 0 && d.validation().get(i) != null) {
                    errors.add(new SpecError("data.validation[" + i + "]", "is also data.corpus[" + inCorpus
                            + "]; held-out text must not be trained on, so list it in one of the two only"));
                }
            }
        }
        if (!TOKENIZERS.contains(d.tokenizer())) {
            errors.add(new SpecError("data.tokenizer", "unknown tokenizer '" + d.tokenizer() + "'; allowed: "
                    + TOKENIZERS));
        }
        if (d.validation() != null && d.valFraction() != null) {
            errors.add(new SpecError("data.valFraction", "cannot be given with data.validation: the held-out split "
                    + "is either the files of data.validation or a fraction of data.corpus; remove one of the two"));
        } else if (d.valFraction() != null && !(d.valFraction() > 0 && d.valFraction() <= 0.5)) {
            errors.add(new SpecError("data.valFraction", "must be in (0, 0.5] (got " + d.valFraction() + ")"));
        }

        RunSpec.Eval e = s.eval();
        nonNegative(errors, "eval.every", e.every());
        nonNegative(errors, "eval.maxWindows", e.maxWindows());
        nonNegative(errors, "checkpointEvery", s.checkpointEvery());
        if (s.checkpointEvery() > 0 && t.steps() > 0
                && (t.steps() + (long) s.checkpointEvery() - 1) / s.checkpointEvery() > MAX_CHECKPOINTS) {
            errors.add(new SpecError("checkpointEvery", "at most " + MAX_CHECKPOINTS + " periodic checkpoints: 0 or "
                    + "at least " + ((t.steps() + MAX_CHECKPOINTS - 1) / MAX_CHECKPOINTS) + " for training.steps="
                    + t.steps() + " (got " + s.checkpointEvery() + ")"));
        }
        if (!BACKENDS.contains(s.backend())) {
            errors.add(new SpecError("backend", "unknown backend '" + s.backend() + "'; allowed: " + BACKENDS));
        }
        if (!PRECISIONS.contains(s.precision())) {
            errors.add(new SpecError("precision", "unknown precision '" + s.precision() + "'; allowed: "
                    + PRECISIONS));
        } else if (WireName.parse(Precision.class, s.precision(), "precision") == Precision.FP64
                && BACKENDS.contains(s.backend())
                && WireName.parse(BackendChoice.class, s.backend(), "backend") == BackendChoice.CUDA) {
            errors.add(new SpecError("precision", "fp64 is a CPU reference precision; use backend \"cpu\" or "
                    + "precision \"fp32\" (the GPU trains in bf16 with fp32 master weights)"));
        }
        nonNegative(errors, "threads", s.threads());
        atMost(errors, "threads", s.threads(), MAX_THREADS);
        return errors;
    }

    /**
     * Whether training a resolved spec on the CPU backend fits in {@code availableBytes} (for the CPU backend, whose
     * tensors are heap arrays, {@code Runtime.getRuntime().maxMemory()}); see {@link MemoryEstimate}. Empty when it
     * fits. Otherwise one error: on {@code training.batchSize} when activations are most of the need and a smaller
     * micro-batch fits, else on {@code model.preset}, naming the presets that fit.
     */
    public static Optional<SpecError> validateForCpu(ResolvedSpec resolved, int vocabSize, long availableBytes) {
        MemoryEstimate need = MemoryEstimate.cpuTraining(resolved, vocabSize);
        if (need.totalBytes() <= availableBytes) {
            return Optional.empty();
        }
        ToLongFunction<ResolvedSpec> needOf =
                candidate -> MemoryEstimate.cpuTraining(candidate, vocabSize).totalBytes();
        String shortfall = "CPU training state needs " + need + " but this machine has "
                + MemoryEstimate.gib(availableBytes) + " GiB";
        int fittingBatch = largestFittingBatchSize(resolved, needOf, availableBytes);
        if (need.activationBytes() > need.totalBytes() / 2 && fittingBatch >= 1) {
            return Optional.of(new SpecError("training.batchSize", shortfall + "; activations dominate: lower "
                    + "training.batchSize to " + fittingBatch + " (the largest that fits; raise training.gradAccum to "
                    + "keep the tokens per step), or use backend \"cuda\""));
        }
        List<String> fittingPresets = fittingPresets(resolved, needOf, availableBytes);
        String advice = fittingPresets.isEmpty()
                ? "no preset fits at training.batchSize=" + resolved.training().batchSize()
                        + "; lower training.batchSize or use backend \"cuda\""
                : "pick a smaller preset (" + String.join(", ", fittingPresets) + ") or use backend \"cuda\"";
        return Optional.of(new SpecError("model.preset", shortfall + "; " + advice));
    }

    /**
     * The vocabulary a check made before the corpus is tokenized assumes: GPT-2's for {@code "gpt2"}, else
     * {@link #CHAR_VOCAB_ASSUMED}.
     */
    public static int vocabularyBeforeData(ResolvedSpec resolved) {
        return resolved.data().tokenizer().equals("gpt2") ? GPT2_VOCAB_SIZE : CHAR_VOCAB_ASSUMED;
    }

    /**
     * Whether training a resolved spec fits on a GPU of {@code gpuBytes} (see {@link GpuMemoryEstimate}). Empty when it
     * fits. Otherwise one error: on {@code training.batchSize}, naming the largest micro-batch that fits, when one
     * does, else on {@code model.preset}, naming the presets that fit.
     */
    public static Optional<SpecError> validateForGpu(ResolvedSpec resolved, int vocabSize, long gpuBytes) {
        GpuMemoryEstimate need = GpuMemoryEstimate.training(resolved, vocabSize);
        if (need.totalBytes() <= gpuBytes) {
            return Optional.empty();
        }
        ToLongFunction<ResolvedSpec> needOf =
                candidate -> GpuMemoryEstimate.training(candidate, vocabSize).totalBytes();
        String shortfall = "training on the GPU needs " + need + " at its peak, the final evaluation, but the GPUs "
                + "have " + MemoryEstimate.gib(gpuBytes) + " GiB";
        int fittingBatch = largestFittingBatchSize(resolved, needOf, gpuBytes);
        if (fittingBatch >= 1) {
            return Optional.of(new SpecError("training.batchSize", shortfall + "; lower training.batchSize to "
                    + fittingBatch + " (the largest that fits; raise training.gradAccum to keep the tokens per step) "
                    + "or model.seqLen"));
        }
        List<String> fittingPresets = fittingPresets(resolved, needOf, gpuBytes);
        String advice = fittingPresets.isEmpty()
                ? "no preset fits, even at training.batchSize=1"
                : "even training.batchSize=1 does not fit: pick a smaller preset (" + String.join(", ", fittingPresets)
                        + ")";
        return Optional.of(new SpecError("model.preset", shortfall + "; " + advice));
    }

    /** The largest micro-batch below the spec's that fits, or 0; memory grows with the batch size. */
    private static int largestFittingBatchSize(ResolvedSpec resolved, ToLongFunction<ResolvedSpec> need,
            long availableBytes) {
        int fits = 0;
        int tooBig = resolved.training().batchSize();
        while (tooBig - fits > 1) {
            int mid = fits + (tooBig - fits) / 2;
            ResolvedSpec.Training t = resolved.training();
            ResolvedSpec candidate = resolved.withTraining(
                    new ResolvedSpec.Training(t.steps(), mid, t.gradAccum(), t.seed()));
            if (need.applyAsLong(candidate) <= availableBytes) {
                fits = mid;
            } else {
                tooBig = mid;
            }
        }
        return fits;
    }

    /** The presets that fit with the rest of the spec as it is (each with its default adapter rank). */
    private static List<String> fittingPresets(ResolvedSpec resolved, ToLongFunction<ResolvedSpec> need,
            long availableBytes) {
        List<String> fitting = new ArrayList<>();
        for (Preset preset : Preset.values()) {
            ResolvedSpec.Model model = preset.model();
            ResolvedSpec candidate = resolved.withModel(model).withAdapters(
                    new ResolvedSpec.Adapters(resolved.adapters().start(), defaultAdapterRank(model.dModel())));
            if (need.applyAsLong(candidate) <= availableBytes) {
                fitting.add(preset.wireName());
            }
        }
        return fitting;
    }

    /** round(1.56% of dModel) to a multiple of 4, at least 4 (docs/method.md, "Lazy adapters"). */
    public static int defaultAdapterRank(int dModel) {
        int rank = 4 * (int) Math.round(0.015625 * dModel / 4.0);
        return Math.max(4, rank);
    }

    /**
     * The first step of the adapter phase, where the sparse phase ends: the engine attaches the adapters here and the
     * workflow ends its sparse-phase chunks here. floor(start · steps) capped at the steps; the steps when the mode has
     * no sparse layers (dense), so no adapters.
     */
    public static int adapterPhaseStart(ResolvedSpec resolved) {
        int steps = resolved.training().steps();
        return resolved.sparsity().mode().sparse() ? Math.min(adapterStartStep(resolved), steps) : steps;
    }

    /**
     * floor(start · steps), taken on the decimal the spec wrote, because in binary 0.29 · 100 = 28.999999999999996,
     * whose floor is 28. The phase boundary is {@link #adapterPhaseStart}; workflows replaying older histories need
     * this alone.
     */
    public static int adapterStartStep(ResolvedSpec spec) {
        return BigDecimal.valueOf(spec.adapters().start()).multiply(BigDecimal.valueOf(spec.training().steps()))
                .setScale(0, RoundingMode.FLOOR).intValueExact();
    }

    /**
     * A list of corpus paths ({@code data.corpus}, {@code data.validation}): 1 to {@link #MAX_CORPUS_ENTRIES} entries,
     * none blank, none listed twice. {@code emptyFix} is the message for a missing, empty or blank-holding list.
     */
    private static void pathList(List<SpecError> errors, String field, List<String> paths, String emptyFix) {
        if (paths == null || paths.isEmpty() || paths.stream().anyMatch(p -> p == null || p.isBlank())) {
            errors.add(new SpecError(field, emptyFix));
        }
        if (paths != null && paths.size() > MAX_CORPUS_ENTRIES) {
            errors.add(new SpecError(field, "must list at most " + MAX_CORPUS_ENTRIES + " entries (got "
                    + paths.size() + "); a folder entry reads every file in it"));
        } else if (paths != null) {
            for (int i = 0; i < paths.size(); i++) {
                int first = paths.indexOf(paths.get(i));
                if (first < i && paths.get(i) != null) {
                    errors.add(new SpecError(field + "[" + i + "]", "is the same as " + field + "[" + first
                            + "]; list each corpus once"));
                }
            }
        }
    }

    /** Null only for a shape field under an unknown preset, which is reported on its own. */
    private static void positive(List<SpecError> errors, String field, Integer value) {
        if (value != null && value < 1) {
            errors.add(new SpecError(field, "must be at least 1 (got " + value + ")"));
        }
    }

    private static void atMost(List<SpecError> errors, String field, Integer value, int max) {
        if (value != null && value > max) {
            errors.add(new SpecError(field, "must be at most " + max + " (got " + value + ")"));
        }
    }

    private static void nonNegative(List<SpecError> errors, String field, int value) {
        if (value < 0) {
            errors.add(new SpecError(field, "must be >= 0 (got " + value + ")"));
        }
    }

    private static void unitInterval(List<SpecError> errors, String field, double value) {
        if (!(value >= 0 && value < 1)) {
            errors.add(new SpecError(field, "must be in [0, 1) (got " + value + ")"));
        }
    }

    private static int roundUp(int value, int multiple) {
        return ((value + multiple - 1) / multiple) * multiple;
    }

    private static int lcm(int a, int b) {
        int x = a;
        int y = b;
        while (y != 0) {
            int r = x % y;
            x = y;
            y = r;
        }
        return a / x * b;
    }

    private static <T> T or(T value, T fallback) {
        return value != null ? value : fallback;
    }
}
