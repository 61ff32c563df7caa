package io.slope.engine.model;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.model.GptConfig.LinearKind;
import io.slope.engine.rng.Philox;
import io.slope.spec.Mode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * GPT-2: learned positions, pre-LayerNorm blocks, tanh GELU, tied embedding and head.
 * Forward and backward are written out once, llm.c style, as calls on a {@link Backend}; every linear layer is either
 * dense or an N:M {@link SparseLinear}.
 */
public final class GptModel implements AutoCloseable {
    private static final double INIT_STD = 0.02;

    private final Backend backend;
    private final GptConfig config;
    private final DType dtype;
    private final List<Parameter> parameters;
    private final Parameter wte;
    private final Parameter wpe;
    private final Parameter lnfWeight;
    private final Parameter lnfBias;
    private final Block[] blocks;
    private final Map<Integer, Activations> activationsByBatch = new HashMap<>();

    private record Linear(String name, Parameter weight, Parameter bias) {}

    /** A low-rank adapter on a sparse layer: {@code Y += (X·A)·B·scale} (docs/method.md). */
    private record Adapter(Parameter a, Parameter b) {}

    private record Block(Parameter ln1Weight, Parameter ln1Bias, Linear qkv, Linear attnProj, Parameter ln2Weight,
            Parameter ln2Bias, Linear fc, Linear fcProj) {}

    /** Sparse state of a model restored from a checkpoint; null for a freshly initialised one. */
    private record SparseState(Map<String, int[]> rowKept, Map<String, byte[]> columnMasks) {}

    private final SparseState restored;
    private final Use use;
    /** Adapted (sparse) layers in declared order, and their adapters once attached. */
    private final Map<String, Linear> sparseLinears = new LinkedHashMap<>();
    private final Map<String, Adapter> adapters = new LinkedHashMap<>();
    private int adapterRank;
    private double adapterScale;

    /**
     * What a model is built for: training gives every parameter a gradient, inference (evaluation copies, sampling,
     * serving) none, which is as much memory again as the weights.
     */
    public enum Use {
        TRAINING,
        INFERENCE
    }

    private GptModel(Backend backend, GptConfig config, DType dtype, Map<String, double[]> dense,
            SparseState restored, Use use) {
        this.restored = restored;
        this.use = use;
        this.backend = backend;
        this.config = config;
        this.dtype = dtype;
        this.parameters = new ArrayList<>();
        int C = config.dModel();
        this.wte = dense("wte", dense, true, config.vocab(), C);
        this.wpe = dense("wpe", dense, true, config.seqLen(), C);
        this.blocks = new Block[config.layers()];
        for (int l = 0; l < config.layers(); l++) {
            String p = "h." + l + ".";
            Parameter ln1w = dense(p + "ln_1.weight", dense, false, C);
            Parameter ln1b = dense(p + "ln_1.bias", dense, false, C);
            Linear qkv = linear(l, LinearKind.QKV, dense);
            Linear proj = linear(l, LinearKind.ATTN_PROJ, dense);
            Parameter ln2w = dense(p + "ln_2.weight", dense, false, C);
            Parameter ln2b = dense(p + "ln_2.bias", dense, false, C);
            Linear fc = linear(l, LinearKind.FC, dense);
            Linear fcProj = linear(l, LinearKind.FC_PROJ, dense);
            blocks[l] = new Block(ln1w, ln1b, qkv, proj, ln2w, ln2b, fc, fcProj);
        }
        this.lnfWeight = dense("ln_f.weight", dense, false, C);
        this.lnfBias = dense("ln_f.bias", dense, false, C);
        if (parameters.size() != dense.size()) {
            throw new IllegalArgumentException("weights given for " + dense.size() + " tensors, the model has "
                    + parameters.size());
        }
    }

    /**
     * A model from dense initial weights in the declared order of {@link #parameterShapes}: sparse layers take their
     * static row mask from these weights (docs/method.md, "Masks").
     */
    public static GptModel fromDenseWeights(Backend backend, GptConfig config, DType dtype,
            Map<String, double[]> dense) {
        return fromDenseWeights(backend, config, dtype, dense, Use.TRAINING);
    }

    /** As {@link #fromDenseWeights(Backend, GptConfig, DType, Map)}, for {@code use}. */
    public static GptModel fromDenseWeights(Backend backend, GptConfig config, DType dtype,
            Map<String, double[]> dense, Use use) {
        return new GptModel(backend, config, dtype, dense, null, use);
    }

    /**
     * A model from a snapshot (a checkpoint's, or a merged form): dense parameters as they are, sparse layers from their
     * kept values, static row masks and current column masks, adapters when the snapshot has them.
     */
    public static GptModel restore(Backend backend, GptConfig config, DType dtype, ModelSnapshot snapshot) {
        return restore(backend, config, dtype, snapshot, Use.TRAINING);
    }

    /** As {@link #restore(Backend, GptConfig, DType, ModelSnapshot)}, for {@code use}. */
    public static GptModel restore(Backend backend, GptConfig config, DType dtype, ModelSnapshot snapshot, Use use) {
        GptModel model = new GptModel(backend, config, dtype, snapshot.values(),
                new SparseState(snapshot.rowKept(), snapshot.columnMasks()), use);
        if (snapshot.adapterRank() > 0) {
            model.attachAdapters(snapshot.adapters(), snapshot.adapterRank(), snapshot.adapterScale());
        }
        return model;
    }

    /** Downloads the model's whole state to the host (a synchronising read). */
    public ModelSnapshot snapshot() {
        Map<String, double[]> values = new LinkedHashMap<>();
        Map<String, double[]> adapterValues = new LinkedHashMap<>();
        Map<String, int[]> rowKept = new LinkedHashMap<>();
        Map<String, byte[]> columnMasks = new LinkedHashMap<>();
        for (Parameter p : parameters) {
            double[] v = backend.download(p.value());
            if (p.group() == Parameter.Group.ADAPTERS) {
                adapterValues.put(p.name(), v);
                continue;
            }
            values.put(p.name(), v);
            if (p.isSparse()) {
                rowKept.put(p.name(), backend.rowKeptIndices(p.sparse()));
                columnMasks.put(p.name(), backend.columnMask(p.sparse()));
            }
        }
        return new ModelSnapshot(values, rowKept, columnMasks, adapterValues, adapterRank, adapterScale);
    }

    /** GPT-2 initialisation from a seed: N(0, 0.02), residual projections N(0, 0.02/√(2L)), LayerNorm 1 and 0. */
    public static Map<String, double[]> initialWeights(GptConfig config, long seed) {
        Map<String, double[]> weights = new LinkedHashMap<>();
        double residualStd = INIT_STD / Math.sqrt(2.0 * config.layers());
        for (Map.Entry<String, int[]> e : parameterShapes(config).entrySet()) {
            String name = e.getKey();
            int n = elements(name, e.getValue());
            double[] w = new double[n];
            if (name.endsWith("ln_1.weight") || name.endsWith("ln_2.weight") || name.equals("ln_f.weight")) {
                Arrays.fill(w, 1.0);
            } else if (!name.endsWith(".bias")) {
                double std = name.endsWith("c_proj.weight") ? residualStd : INIT_STD;
                long stream = Philox.stream("init/" + name);
                for (int i = 0; i < n; i++) {
                    w[i] = std * Philox.normal(seed, stream, i);
                }
            }
            weights.put(name, w);
        }
        return weights;
    }

    /** Every parameter's name and shape, in the declared (checkpoint, export, optimizer) order. */
    public static Map<String, int[]> parameterShapes(GptConfig config) {
        int C = config.dModel();
        Map<String, int[]> shapes = new LinkedHashMap<>();
        shapes.put("wte", new int[] {config.vocab(), C});
        shapes.put("wpe", new int[] {config.seqLen(), C});
        for (int l = 0; l < config.layers(); l++) {
            String p = "h." + l + ".";
            shapes.put(p + "ln_1.weight", new int[] {C});
            shapes.put(p + "ln_1.bias", new int[] {C});
            for (LinearKind kind : List.of(LinearKind.QKV, LinearKind.ATTN_PROJ)) {
                shapes.put(kind.paramName(l) + ".weight", new int[] {kind.outMultiple * C, kind.inMultiple * C});
                shapes.put(kind.paramName(l) + ".bias", new int[] {kind.outMultiple * C});
            }
            shapes.put(p + "ln_2.weight", new int[] {C});
            shapes.put(p + "ln_2.bias", new int[] {C});
            for (LinearKind kind : List.of(LinearKind.FC, LinearKind.FC_PROJ)) {
                shapes.put(kind.paramName(l) + ".weight", new int[] {kind.outMultiple * C, kind.inMultiple * C});
                shapes.put(kind.paramName(l) + ".bias", new int[] {kind.outMultiple * C});
            }
        }
        shapes.put("ln_f.weight", new int[] {C});
        shapes.put("ln_f.bias", new int[] {C});
        return shapes;
    }

    private Parameter dense(String name, Map<String, double[]> dense, boolean decay, int... shape) {
        return add(denseParameter(name, required(dense, name, shape), decay, Parameter.Group.MAIN, shape));
    }

    private Parameter denseParameter(String name, double[] w, boolean decay, Parameter.Group group, int... shape) {
        Tensor value = backend.zeros(dtype, shape);
        backend.upload(value, w);
        backend.declareWeight(value);
        return new Parameter(name, value, gradient(shape), decay, null, group);
    }

    private Linear linear(int layer, LinearKind kind, Map<String, double[]> dense) {
        int C = config.dModel();
        int dOut = kind.outMultiple * C;
        int dIn = kind.inMultiple * C;
        String name = kind.paramName(layer);
        Parameter weight;
        if (config.sparse(layer, kind)) {
            boolean doublePrune = config.mode() == Mode.SLOPE;
            SparseLinear s;
            if (restored == null) {
                double[] w = required(dense, name + ".weight", dOut, dIn);
                s = backend.sparseLinear(w, dOut, dIn, config.pattern(), doublePrune, dtype);
            } else {
                int kept = dIn / config.pattern().m() * config.pattern().n();
                s = backend.restoreSparseLinear(required(dense, name + ".weight", dOut, kept),
                        restored.rowKept().get(name + ".weight"), restored.columnMasks().get(name + ".weight"),
                        dOut, dIn, config.pattern(), doublePrune, dtype);
            }
            int[] shape = s.values().shape();
            weight = add(new Parameter(name + ".weight", s.values(), gradient(shape), true, s,
                    Parameter.Group.MAIN));
        } else {
            weight = dense(name + ".weight", dense, true, dOut, dIn);
        }
        Parameter bias = dense(name + ".bias", dense, false, dOut);
        Linear linear = new Linear(name, weight, bias);
        if (weight.isSparse()) {
            sparseLinears.put(name, linear);
        }
        return linear;
    }

    /** A zero gradient of {@code shape} for training; none for inference. */
    private Tensor gradient(int... shape) {
        return use == Use.TRAINING ? backend.zeros(dtype, shape) : null;
    }

    private Parameter add(Parameter p) {
        parameters.add(p);
        return p;
    }

    /** The largest array the JVM allocates. */
    private static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    /**
     * A parameter's element count, counted in long so that a shape such as 3C x C at C = 65536 (3 * 2^32) is refused
     * instead of wrapping to a small int (0 there).
     */
    static int elements(String name, int... shape) {
        long n = 1;
        for (int d : shape) {
            n = Math.multiplyExact(n, (long) d);
        }
        if (n > MAX_ELEMENTS) {
            throw new IllegalArgumentException("parameter " + name + " of shape " + Arrays.toString(shape) + " has "
                    + n + " elements, more than one array holds (" + MAX_ELEMENTS + "); lower model.dModel (docs/"
                    + "spec.md gives its limit)");
        }
        return (int) n;
    }

    private static double[] required(Map<String, double[]> dense, String name, int... shape) {
        double[] w = dense.get(name);
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        if (w == null) {
            throw new IllegalArgumentException("no initial weights for parameter '" + name + "'");
        }
        if (w.length != n) {
            throw new IllegalArgumentException("parameter '" + name + "' needs " + n + " values, got " + w.length);
        }
        return w;
    }

    // ---- lazy low-rank adapters (docs/method.md) ------------------------------------------------------------------

    /** Adapter parameter names and shapes for every sparse layer: {@code <layer>.lora_A} dIn×r, {@code .lora_B} r×dOut. */
    public static Map<String, int[]> adapterShapes(GptConfig config, int rank) {
        Map<String, int[]> shapes = new LinkedHashMap<>();
        int C = config.dModel();
        for (int l = 0; l < config.layers(); l++) {
            for (LinearKind kind : LinearKind.values()) {
                if (config.sparse(l, kind)) {
                    shapes.put(kind.paramName(l) + ".lora_A", new int[] {kind.inMultiple * C, rank});
                    shapes.put(kind.paramName(l) + ".lora_B", new int[] {rank, kind.outMultiple * C});
                }
            }
        }
        return shapes;
    }

    /** Fresh adapters from a seed: A ~ N(0, 1) with no fan-in scaling, B = 0, so inserting them changes nothing. */
    public static Map<String, double[]> initialAdapterWeights(GptConfig config, int rank, long seed) {
        Map<String, double[]> weights = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : adapterShapes(config, rank).entrySet()) {
            double[] w = new double[elements(e.getKey(), e.getValue())];
            if (e.getKey().endsWith(".lora_A")) {
                long stream = Philox.stream("adapter/" + e.getKey());
                for (int i = 0; i < w.length; i++) {
                    w[i] = Philox.normal(seed, stream, i);
                }
            }
            weights.put(e.getKey(), w);
        }
        return weights;
    }

    /**
     * Attaches adapters to every sparse layer, appended to the parameters in declared order in their own optimizer
     * group. Training uses {@code scale = 1/r}; the inference form folds it into B and uses 1.
     */
    public void attachAdapters(Map<String, double[]> weights, int rank, double scale) {
        if (!adapters.isEmpty()) {
            throw new IllegalStateException("the model already has adapters");
        }
        Map<String, int[]> shapes = adapterShapes(config, rank);
        if (shapes.isEmpty()) {
            throw new IllegalStateException("a model without sparse layers has nothing to attach adapters to");
        }
        for (Linear linear : sparseLinears.values()) {
            String a = linear.name() + ".lora_A";
            String b = linear.name() + ".lora_B";
            adapters.put(linear.name(), new Adapter(
                    add(denseParameter(a, required(weights, a, shapes.get(a)), true, Parameter.Group.ADAPTERS,
                            shapes.get(a))),
                    add(denseParameter(b, required(weights, b, shapes.get(b)), true, Parameter.Group.ADAPTERS,
                            shapes.get(b)))));
        }
        this.adapterRank = rank;
        this.adapterScale = scale;
        // Activation buffers are rebuilt with room for the adapters' X·A.
        releaseAllActivations();
    }

    /**
     * Whether the adapted layers run as one {@link Backend#sparseLowRankForward} each: in a model built for inference
     * whose adapters carry scale 1 (the inference form, the scale folded into B), which keeps no xa for a backward.
     */
    private boolean fusedLowRank() {
        return use == Use.INFERENCE && adapterScale == 1.0;
    }

    public boolean hasAdapters() {
        return !adapters.isEmpty();
    }

    /** The adapter rank r; 0 without adapters. */
    public int adapterRank() {
        return adapterRank;
    }

    /** The factor on the adapter path (1/r in training); 0 without adapters. */
    public double adapterScale() {
        return adapterScale;
    }

    public GptConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public DType dtype() {
        return dtype;
    }

    /** All parameters in declared order. */
    public List<Parameter> parameters() {
        return List.copyOf(parameters);
    }

    // ---- forward / backward -----------------------------------------------------------------------------------------

    /**
     * Buffers for a micro-batch of B sequences, kept between steps. A set for a forward alone (evaluation, prefill)
     * keeps no layer's activations for a backward: all layers share one layer's buffers (each layer reads only the
     * residual stream the one before left), and it has no backward scratch, so it holds about 1/L of a training set.
     */
    private final class Activations {
        final int B;
        final boolean forBackward;
        final Tensor tokens;
        final Tensor targets;
        final Tensor encoded;
        final Tensor[] ln1 = new Tensor[config.layers()];
        final Tensor[] ln1Mean = new Tensor[config.layers()];
        final Tensor[] ln1Rstd = new Tensor[config.layers()];
        final Tensor[] qkv = new Tensor[config.layers()];
        final Tensor[] atty = new Tensor[config.layers()];
        final Tensor[] attState = new Tensor[config.layers()];
        final Tensor[] attProj = new Tensor[config.layers()];
        final Tensor[] residual2 = new Tensor[config.layers()];
        final Tensor[] ln2 = new Tensor[config.layers()];
        final Tensor[] ln2Mean = new Tensor[config.layers()];
        final Tensor[] ln2Rstd = new Tensor[config.layers()];
        final Tensor[] fch = new Tensor[config.layers()];
        final Tensor[] fchGelu = new Tensor[config.layers()];
        final Tensor[] fcProj = new Tensor[config.layers()];
        final Tensor[] residual3 = new Tensor[config.layers()];
        final Tensor lnf;
        final Tensor lnfMean;
        final Tensor lnfRstd;
        final Tensor logits;
        final Tensor losses;
        // Backward scratch, shared by all layers.
        final Tensor dResidual;
        final Tensor dLn;
        final Tensor dQkv;
        final Tensor dAtty;
        final Tensor dFch;
        final Tensor dFchGelu;
        /**
         * X·A per adapted layer (none when the layers run fused: {@link #fusedLowRank}), and the shared backward scratch
         * for d(X·A).
         */
        final Map<String, Tensor> xa = new HashMap<>();
        final Tensor dXa;
        /** Every buffer above, in allocation order, for {@link #release}. */
        private final List<Tensor> owned = new ArrayList<>();

        Activations(int B, boolean forBackward) {
            this.B = B;
            this.forBackward = forBackward;
            int rows = B * config.seqLen();
            int C = config.dModel();
            // Activations at the backend's activation type (bf16 on a GPU); row statistics and losses at the
            // parameters' precision.
            DType act = backend.activationType(dtype);
            try {
                tokens = allocate(DType.I32, rows);
                targets = allocate(DType.I32, rows);
                encoded = allocate(act, rows, C);
                for (int l = 0; l < config.layers(); l++) {
                    ln1[l] = perLayer(l, ln1, () -> allocate(act, rows, C));
                    ln1Mean[l] = perLayer(l, ln1Mean, () -> allocate(dtype, rows));
                    ln1Rstd[l] = perLayer(l, ln1Rstd, () -> allocate(dtype, rows));
                    qkv[l] = perLayer(l, qkv, () -> allocate(act, rows, 3 * C));
                    atty[l] = perLayer(l, atty, () -> allocate(act, rows, C));
                    attState[l] = perLayer(l, attState, () -> own(backend.attentionState(B, config.seqLen(),
                            config.heads())));
                    attProj[l] = perLayer(l, attProj, () -> allocate(act, rows, C));
                    residual2[l] = perLayer(l, residual2, () -> allocate(act, rows, C));
                    ln2[l] = perLayer(l, ln2, () -> allocate(act, rows, C));
                    ln2Mean[l] = perLayer(l, ln2Mean, () -> allocate(dtype, rows));
                    ln2Rstd[l] = perLayer(l, ln2Rstd, () -> allocate(dtype, rows));
                    // The GELU's input, kept for its backward only.
                    fch[l] = forBackward ? allocate(act, rows, 4 * C) : null;
                    fchGelu[l] = perLayer(l, fchGelu, () -> allocate(act, rows, 4 * C));
                    fcProj[l] = perLayer(l, fcProj, () -> allocate(act, rows, C));
                    residual3[l] = perLayer(l, residual3, () -> allocate(act, rows, C));
                }
                lnf = allocate(act, rows, C);
                lnfMean = allocate(dtype, rows);
                lnfRstd = allocate(dtype, rows);
                logits = allocate(act, rows, config.vocab());
                losses = allocate(dtype, rows);
                dResidual = forBackward ? allocate(act, rows, C) : null;
                dLn = forBackward ? allocate(act, rows, C) : null;
                dQkv = forBackward ? allocate(act, rows, 3 * C) : null;
                dAtty = forBackward ? allocate(act, rows, C) : null;
                dFch = forBackward ? allocate(act, rows, 4 * C) : null;
                // d(fchGelu) only where fc_proj's GEMM does not apply the GELU's backward itself.
                boolean unfused = Arrays.stream(blocks).anyMatch(blk -> !fusesGelu(blk.fcProj()));
                dFchGelu = forBackward && unfused ? allocate(act, rows, 4 * C) : null;
                if (!fusedLowRank()) {
                    for (String layer : adapters.keySet()) {
                        xa.put(layer, allocate(act, rows, adapterRank));
                    }
                }
                dXa = adapters.isEmpty() || !forBackward ? null : allocate(act, rows, adapterRank);
            } catch (RuntimeException e) {
                // A set that does not fit (OutOfDeviceMemory) gives back what it had taken, for a smaller one.
                release();
                throw e;
            }
        }

        /** Layer l's buffer: its own in a set for a backward, else layer 0's. */
        private Tensor perLayer(int l, Tensor[] buffers, Supplier<Tensor> make) {
            return forBackward || l == 0 ? make.get() : buffers[0];
        }

        private Tensor allocate(DType type, int... shape) {
            return own(backend.zeros(type, shape));
        }

        private Tensor own(Tensor t) {
            owned.add(t);
            return t;
        }

        /** Gives every buffer of the set back to the backend. */
        void release() {
            owned.forEach(backend::release);
            owned.clear();
        }
    }

    /** The set for a forward and backward over B sequences (a forward-only set of that size is given back first). */
    private Activations activations(int B) {
        Activations a = activationsByBatch.get(B);
        if (a != null && !a.forBackward) {
            releaseActivations(B);
            a = null;
        }
        return a != null ? a : activationsByBatch.computeIfAbsent(B, b -> new Activations(b, true));
    }

    /** A set a forward over B sequences can use: the training set of that size if there is one, else a forward-only one. */
    private Activations forwardActivations(int B) {
        return activationsByBatch.computeIfAbsent(B, b -> new Activations(b, false));
    }

    /** The set the last forward over B sequences wrote. */
    private Activations lastForward(int B) {
        Activations a = activationsByBatch.get(B);
        if (a == null) {
            throw new IllegalStateException("no forward over " + B + " sequences has run");
        }
        return a;
    }

    /**
     * Gives the buffers of micro-batches of B sequences back to the backend (after a forward at B ran out of device
     * memory, so that a smaller size can have them); a later pass at B allocates them again.
     */
    public void releaseActivations(int B) {
        Activations a = activationsByBatch.remove(B);
        if (a != null) {
            a.release();
        }
    }

    private void releaseAllActivations() {
        activationsByBatch.values().forEach(Activations::release);
        activationsByBatch.clear();
    }

    /**
     * Forward pass over B sequences: {@code inputs} and {@code targets} are B·T token ids. Leaves the per-position
     * losses on the backend; {@link #meanLoss} reads them.
     */
    public void forward(int[] inputs, int[] targets, int B) {
        Activations a = forwardActivations(B);
        uploadTargets(a, targets);
        forwardToLogits(a, inputs, null);
        backend.crossEntropyForwardBackward(a.losses, null, a.logits, a.targets, 0.0);
    }

    /**
     * Before the forward: an upload waits for the work queued before it, so one after the forward would leave a GPU
     * idle until the host had queued the loss and the backward.
     */
    private void uploadTargets(Activations a, int[] targets) {
        backend.uploadInts(a.targets, checkLength(targets, a.B, "targets"));
    }

    /**
     * Forward and backward: gradients of (Σ over positions of the loss)·{@code gradScale} are added into every
     * parameter's gradient. With gradScale = 1/(tokens of the optimizer step) micro-batches average.
     */
    public void forwardBackward(int[] inputs, int[] targets, int B, double gradScale) {
        requireTraining();
        Activations a = activations(B);
        uploadTargets(a, targets);
        uploadInputs(a, inputs);
        backend.repeat("forwardBackward " + System.identityHashCode(a) + " scale " + gradScale, () -> {
            forwardFromTokens(a, null);
            backend.crossEntropyForwardBackward(a.losses, a.logits, a.logits, a.targets, gradScale);
            backward(a);
        });
    }

    /** Refuses what needs gradients on a model built for inference. */
    public void requireTraining() {
        if (use != Use.TRAINING) {
            throw new IllegalStateException("this model was built for inference and has no gradients: build it with "
                    + "GptModel.Use.TRAINING to train it");
        }
    }

    /** acc[0] += weight · the mean loss of the last forward over B sequences, on the backend (nothing is read). */
    public void addMeanLoss(Tensor acc, int B, double weight) {
        backend.addScaledSum(acc, lastForward(B).losses, weight / ((double) B * config.seqLen()));
    }

    /** Mean of the per-position losses of the last forward over B sequences (a synchronising read). */
    public double meanLoss(int B) {
        double[] losses = backend.download(lastForward(B).losses);
        double sum = 0;
        for (double l : losses) {
            sum += l;
        }
        return sum / losses.length;
    }

    /** Logits of the last forward over B sequences, {@code B·T × vocab} (a synchronising read). */
    public double[] logits(int B) {
        return backend.download(lastForward(B).logits);
    }

    /** Per-position losses of the last forward over B sequences. */
    public double[] losses(int B) {
        return backend.download(lastForward(B).losses);
    }

    private int[] checkLength(int[] ids, int B, String what) {
        if (ids.length != B * config.seqLen()) {
            throw new IllegalArgumentException(what + ": expected " + B + "×" + config.seqLen() + " ids, got "
                    + ids.length);
        }
        return ids;
    }

    /** The forward to the logits into {@code a}; with a cache, each layer's keys and values go into it (prefill). */
    private Activations forwardToLogits(Activations a, int[] inputs, KvCache fill) {
        uploadInputs(a, inputs);
        return forwardFromTokens(a, fill);
    }

    private void uploadInputs(Activations a, int[] inputs) {
        backend.uploadInts(a.tokens, checkLength(inputs, a.B, "inputs"));
    }

    /** {@link #forwardToLogits} from the tokens already in {@code a.tokens}. */
    private Activations forwardFromTokens(Activations a, KvCache fill) {
        int B = a.B;
        int T = config.seqLen();
        backend.embeddingForward(a.encoded, a.tokens, wte.value(), wpe.value(), B, T);
        Tensor residual = a.encoded;
        backend.layerNormForward(a.ln1[0], a.ln1Mean[0], a.ln1Rstd[0], residual, blocks[0].ln1Weight().value(),
                blocks[0].ln1Bias().value());
        for (int l = 0; l < config.layers(); l++) {
            Block blk = blocks[l];
            linearForward(a.xa, a.qkv[l], a.ln1[l], blk.qkv());
            if (fill != null) {
                backend.kvCacheStore(fill.keys[l], fill.values[l], a.qkv[l], B, fill.position);
            }
            backend.attentionForward(a.atty[l], a.attState[l], a.qkv[l], B, T, config.heads());
            linearForward(a.xa, a.attProj[l], a.atty[l], blk.attnProj());
            backend.residualLayerNormForward(a.residual2[l], a.ln2[l], a.ln2Mean[l], a.ln2Rstd[l], residual,
                    a.attProj[l], blk.ln2Weight().value(), blk.ln2Bias().value());
            mlpUpForward(a.xa, a.fchGelu[l], a.fch[l], a.ln2[l], blk.fc());
            linearForward(a.xa, a.fcProj[l], a.fchGelu[l], blk.fcProj());
            // The block's output and the LayerNorm after it (the next block's ln1, or lnf) in one pass.
            if (l + 1 < config.layers()) {
                Block next = blocks[l + 1];
                backend.residualLayerNormForward(a.residual3[l], a.ln1[l + 1], a.ln1Mean[l + 1], a.ln1Rstd[l + 1],
                        a.residual2[l], a.fcProj[l], next.ln1Weight().value(), next.ln1Bias().value());
            } else {
                backend.residualLayerNormForward(a.residual3[l], a.lnf, a.lnfMean, a.lnfRstd, a.residual2[l],
                        a.fcProj[l], lnfWeight.value(), lnfBias.value());
            }
            residual = a.residual3[l];
        }
        backend.matmulForward(a.logits, a.lnf, wte.value(), null);
        return a;
    }

    // ---- incremental decoding (KV cache) ---------------------------------------------------------------------------

    /**
     * An empty key/value cache for B sequences, for {@link #prefill} and {@link #decode}; it needs a backend that
     * {@linkplain Backend#supportsKvCache supports} them.
     */
    public KvCache kvCache(int B) {
        if (!backend.supportsKvCache()) {
            throw new UnsupportedOperationException(backend.name() + " does not implement KV-cache decoding");
        }
        return new KvCache(this, B, adapters.keySet());
    }

    /**
     * The batched forward over B sequences of T = seqLen ids (as {@link #forward}, without the losses), whose first
     * {@code length} positions per sequence then fill {@code cache}: every layer's keys and values are copied from its
     * qkv. {@link #logits} reads the logits. Positions from {@code length} on (padding) are copied too but never
     * attended: {@link #decode} overwrites position p before attending over 0..p.
     */
    public void prefill(KvCache cache, int[] inputs, int length) {
        checkCache(cache);
        if (length < 1 || length > config.seqLen()) {
            throw new IllegalArgumentException("prefill of " + length + " positions; the context holds 1.."
                    + config.seqLen());
        }
        backend.uploadInts(cache.position, new int[] {0});
        forwardToLogits(forwardActivations(cache.B), inputs, cache);
        cache.length = length;
    }

    /**
     * One token per sequence at position p = {@code cache.length()}: the forward of that position alone, its keys and
     * values appended to the cache, attention over positions 0..p. Returns its logits, {@code B × vocab} (a
     * synchronising read): the same arithmetic, in the same order, as the batched forward's row p. The tokens and p
     * are uploaded first and read on the backend, so every step of one cache is the same {@link Backend#repeat}ed pass
     * (a GPU replays it as one graph).
     */
    public double[] decode(KvCache cache, int[] tokens) {
        checkCache(cache);
        int B = cache.B;
        int p = cache.length;
        if (cache.full()) {
            throw new IllegalStateException("the cache holds all " + config.seqLen() + " positions of the context");
        }
        if (tokens.length != B) {
            throw new IllegalArgumentException("decode: expected " + B + " tokens, one per sequence, got "
                    + tokens.length);
        }
        backend.uploadInts(cache.tokens, tokens);
        backend.uploadInts(cache.position, new int[] {p});
        backend.repeat("decode " + cache.serial + " B " + B, () -> decodeStep(cache));
        cache.length = p + 1;
        return backend.download(cache.logits);
    }

    /** The forward of one position per sequence, from the tokens and position uploaded into {@code cache}. */
    private void decodeStep(KvCache cache) {
        int B = cache.B;
        backend.embeddingForwardAt(cache.residual, cache.tokens, wte.value(), wpe.value(), B, cache.position);
        backend.layerNormForward(cache.ln, cache.lnMean, cache.lnRstd, cache.residual, blocks[0].ln1Weight().value(),
                blocks[0].ln1Bias().value());
        for (int l = 0; l < config.layers(); l++) {
            Block blk = blocks[l];
            linearForward(cache.xa, cache.qkv, cache.ln, blk.qkv());
            backend.kvCacheStore(cache.keys[l], cache.values[l], cache.qkv, B, cache.position);
            backend.attentionDecode(cache.atty, cache.qkv, cache.keys[l], cache.values[l], B, cache.position,
                    config.heads());
            linearForward(cache.xa, cache.branch, cache.atty, blk.attnProj());
            backend.residualLayerNormForward(cache.residual2, cache.ln, cache.lnMean, cache.lnRstd, cache.residual,
                    cache.branch, blk.ln2Weight().value(), blk.ln2Bias().value());
            mlpUpForward(cache.xa, cache.fchGelu, null, cache.ln, blk.fc());
            linearForward(cache.xa, cache.branch, cache.fchGelu, blk.fcProj());
            Parameter lnWeight = l + 1 < config.layers() ? blocks[l + 1].ln1Weight() : lnfWeight;
            Parameter lnBias = l + 1 < config.layers() ? blocks[l + 1].ln1Bias() : lnfBias;
            backend.residualLayerNormForward(cache.residual, cache.ln, cache.lnMean, cache.lnRstd, cache.residual2,
                    cache.branch, lnWeight.value(), lnBias.value());
        }
        backend.matmulForward(cache.logits, cache.ln, wte.value(), null);
    }

    private void checkCache(KvCache cache) {
        if (cache.model != this) {
            throw new IllegalArgumentException("a KV cache made by another model");
        }
        if (!cache.xa.keySet().equals(adapters.keySet())) {
            throw new IllegalStateException("the KV cache was made before the model's adapters were attached");
        }
    }

    private void backward(Activations a) {
        int T = config.seqLen();
        int L = config.layers();
        Tensor lastResidual = a.residual3[L - 1];
        // logits = lnf·wteᵀ: the tied head's gradient lands in wte's gradient, with the embedding's.
        backend.matmulBackward(a.dLn, wte.grad(), null, a.logits, a.lnf, wte.value());
        backend.zero(a.dResidual);
        backend.layerNormBackward(a.dResidual, lnfWeight.grad(), lnfBias.grad(), a.dLn, lastResidual,
                lnfWeight.value(), a.lnfMean, a.lnfRstd);
        for (int l = L - 1; l >= 0; l--) {
            Block blk = blocks[l];
            Tensor residual = l == 0 ? a.encoded : a.residual3[l - 1];
            // dResidual holds d(residual3); it flows unchanged to residual2 and into the MLP branch.
            // Each layer's input gradient is written whole by its own backward (ADR 043): no zeroing first.
            mlpDownBackward(a, a.dFch, a.dResidual, a.fchGelu[l], a.fch[l], blk.fcProj());
            linearBackward(a, a.dLn, a.dFch, a.ln2[l], blk.fc());
            backend.layerNormBackward(a.dResidual, blk.ln2Weight().grad(), blk.ln2Bias().grad(), a.dLn,
                    a.residual2[l], blk.ln2Weight().value(), a.ln2Mean[l], a.ln2Rstd[l]);
            // dResidual now holds d(residual2); the same split for the attention branch.
            linearBackward(a, a.dAtty, a.dResidual, a.atty[l], blk.attnProj());
            backend.attentionBackward(a.dQkv, a.dAtty, a.qkv[l], a.atty[l], a.attState[l], a.B, T, config.heads());
            linearBackward(a, a.dLn, a.dQkv, a.ln1[l], blk.qkv());
            backend.layerNormBackward(a.dResidual, blk.ln1Weight().grad(), blk.ln1Bias().grad(), a.dLn, residual,
                    blk.ln1Weight().value(), a.ln1Mean[l], a.ln1Rstd[l]);
        }
        backend.embeddingBackward(wte.grad(), wpe.grad(), a.dResidual, a.tokens, a.B, T);
    }

    /**
     * Whether the GELU between the MLP's two layers runs inside {@code layer}'s GEMM (fc's forward, fc_proj's input
     * gradient): only for a dense layer without an adapter. A sparse layer's GEMM is cuSPARSELt's, and an adapter adds
     * its term after the GEMM, before the GELU (forward) or before its backward.
     */
    private boolean fusesGelu(Linear layer) {
        return !layer.weight().isSparse() && !adapters.containsKey(layer.name());
    }

    /**
     * The MLP's fc layer and its GELU: fch = inp·Wᵀ + b (+ adapter), fchGelu = gelu(fch). A forward with no backward
     * passes no fch: the product goes through fchGelu, and nothing keeps the pre-activation.
     */
    private void mlpUpForward(Map<String, Tensor> xa, Tensor fchGelu, Tensor fch, Tensor inp, Linear fc) {
        if (fusesGelu(fc)) {
            backend.matmulGeluForward(fchGelu, fch, inp, fc.weight().value(), fc.bias().value());
        } else if (fch == null) {
            linearGeluForward(xa, fchGelu, inp, fc);
        } else {
            linearForward(xa, fch, inp, fc);
            backend.geluForward(fchGelu, fch);
        }
    }

    /**
     * gelu of {@link #linearForward} into out, for a forward with no backward: in the inference form's accumulate pass
     * where the backend can, else in place over out.
     */
    private void linearGeluForward(Map<String, Tensor> xa, Tensor out, Tensor inp, Linear layer) {
        Parameter w = layer.weight();
        Adapter adapter = adapters.get(layer.name());
        if (w.isSparse() && adapter != null && fusedLowRank()) {
            backend.sparseLowRankGeluForward(out, inp, w.sparse(), adapter.a().value(), adapter.b().value(),
                    layer.bias().value());
        } else {
            linearForward(xa, out, inp, layer);
            backend.geluForward(out, out);
        }
    }

    /**
     * fc_proj's backward and the GELU's before it: dFch = d(fchGelu) ⊙ gelu'(fch), the gradient of the fc layer's
     * output, overwritten; fc_proj's weight (and adapter) gradients accumulate.
     */
    private void mlpDownBackward(Activations a, Tensor dFch, Tensor dout, Tensor fchGelu, Tensor fch, Linear fcProj) {
        if (fusesGelu(fcProj)) {
            Parameter w = fcProj.weight();
            backend.matmulBackwardGelu(dFch, w.grad(), fcProj.bias().grad(), dout, fchGelu, w.value(), fch);
        } else {
            linearBackward(a, a.dFchGelu, dout, fchGelu, fcProj);
            backend.geluBackward(dFch, fch, a.dFchGelu);
        }
    }

    private void linearForward(Map<String, Tensor> xa, Tensor out, Tensor inp, Linear layer) {
        Parameter w = layer.weight();
        Adapter adapter = adapters.get(layer.name());
        if (adapter != null && fusedLowRank()) {
            backend.sparseLowRankForward(out, inp, w.sparse(), adapter.a().value(), adapter.b().value(),
                    layer.bias().value());
            return;
        }
        if (w.isSparse()) {
            backend.sparseMatmulForward(out, inp, w.sparse(), layer.bias().value());
        } else {
            backend.matmulForward(out, inp, w.value(), layer.bias().value());
        }
        if (adapter != null) {
            backend.adapterForward(out, xa.get(layer.name()), inp, adapter.a().value(), adapter.b().value(),
                    adapterScale);
        }
    }

    private void linearBackward(Activations act, Tensor dinp, Tensor dout, Tensor inp, Linear layer) {
        Parameter w = layer.weight();
        if (w.isSparse()) {
            backend.sparseMatmulBackward(dinp, w.grad(), layer.bias().grad(), dout, inp, w.sparse());
        } else {
            backend.matmulBackward(dinp, w.grad(), layer.bias().grad(), dout, inp, w.value());
        }
        Adapter adapter = adapters.get(layer.name());
        if (adapter != null) {
            backend.adapterBackward(dinp, adapter.a().grad(), adapter.b().grad(), act.dXa, dout, inp,
                    act.xa.get(layer.name()), adapter.a().value(), adapter.b().value(), adapterScale);
        }
    }

    /**
     * Every parameter as a dense host array in PyTorch layout (sparse layers expanded to W^R with zeros; adapters, when
     * attached, as they are).
     */
    public Map<String, double[]> denseWeights() {
        ModelSnapshot snapshot = snapshot();
        Map<String, double[]> out = snapshot.denseValues(config);
        out.putAll(snapshot.adapters());
        return out;
    }

    @Override
    public void close() {
        releaseAllActivations();
    }
}
