package io.slope.engine.train;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.OutOfDeviceMemory;
import io.slope.engine.backend.Tensor;
import io.slope.engine.data.BatchSource;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.parallel.Collective;
import io.slope.spec.DataParallel;
import io.slope.spec.MemoryEstimate;
import io.slope.spec.Preset;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecs;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One optimizer step: micro-batches with gradients averaged over every token of the step, global-norm clipping, AdamW,
 * then the sparse operands rebuilt from the new values (with a column-mask refresh every {@code columnMaskRefresh}
 * steps).
 *
 * <p>Data parallel over the ranks of a {@link Collective}: rank r runs the micro-batches r, r + N, … of every step (the
 * loader is indexed by global position, so the global batch does not depend on N), the gradients are summed across
 * ranks in buckets (one per transformer block, one for the rest), each rank updates its ZeRO-1 shard and the owners
 * broadcast the new values. On CUDA both go through NCCL on the device (ADR 041); elsewhere through the host.
 *
 * <p>Out of device memory in forward/backward ({@link OutOfDeviceMemory}), the step starts over with each micro-batch
 * run in passes of fewer sequences (half, or the next divisor of {@code batchSize} below), the same windows and
 * gradient scale: the tokens, loss and update of the step are those of whole micro-batches, up to rounding. The
 * smaller passes stay for the rest of the run; one sequence that does not fit is an error naming what to lower.
 */
public final class Trainer {
    private static final Pattern BLOCK = Pattern.compile("h\\.\\d+\\.");

    /**
     * What one step did; {@code loss} is the mean training loss over the step's tokens, before the update;
     * {@code sequencesPerPass} the sequences one forward/backward held: {@code training.batchSize}, or fewer once the
     * device ran out of memory at it.
     */
    public record StepStats(int step, double loss, double lr, double gradNorm, long tokens, double seconds,
            int sequencesPerPass) {}

    private static final System.Logger LOG = System.getLogger(Trainer.class.getName());

    private final GptModel model;
    private final Collective collective;
    private final BatchSource batches;
    private final AdamW optimizer;
    /** The step's loss summed on the device, read once the whole step is queued. */
    private final Tensor lossSum;
    private final LrSchedule schedule;
    private final int batchSize;
    private final int gradAccum;
    private final int columnMaskRefresh;
    private final int adapterStartStep;
    private final int adapterRank;
    private final long seed;
    /** The spec's model.preset; the error for a model too large names it unless it is the first, the smallest. */
    private final Preset preset;
    private final Consumer<String> info;
    /** Sequences per forward/backward: batchSize, until the device runs out of memory there (then a divisor of it). */
    private int sequencesPerPass;
    private List<Parameter> parameters;
    /** {@link #gradientBuckets} of {@link #parameters}, made when they change (construction, adapters attached). */
    private List<List<Tensor>> buckets;
    /** What each step starts by zeroing: every gradient and the loss sum, in one call. */
    private List<Tensor> zeroedEachStep;

    public Trainer(GptModel model, ResolvedSpec resolved, BatchSource batches) {
        this(model, resolved, batches, Collective.single());
    }

    /** As the full constructor, telling what a user should know to this class's {@link System.Logger}. */
    public Trainer(GptModel model, ResolvedSpec resolved, BatchSource batches, Collective collective) {
        this(model, resolved, batches, collective, line -> LOG.log(System.Logger.Level.INFO, line));
    }

    /**
     * {@code info} hears what a user should know about the run, in words: that micro-batches run in smaller passes
     * from a step on, because the device ran out of memory.
     */
    public Trainer(GptModel model, ResolvedSpec resolved, BatchSource batches, Collective collective,
            Consumer<String> info) {
        model.requireTraining();
        int ranks = collective.worldSize();
        if (!DataParallel.fits(ranks, resolved.training().gradAccum())) {
            throw new IllegalArgumentException(DataParallel.whyNot(ranks, resolved.training().gradAccum()));
        }
        this.model = model;
        this.collective = collective;
        this.batches = batches;
        this.optimizer = new AdamW(model.backend(), resolved.optimizer(), collective.rank(), ranks);
        this.lossSum = model.backend().zeros(DType.F64, 1);
        useModelParameters();
        this.schedule = LrSchedule.of(resolved);
        this.batchSize = resolved.training().batchSize();
        this.gradAccum = resolved.training().gradAccum();
        this.columnMaskRefresh = resolved.sparsity().columnMaskRefresh();
        this.adapterStartStep = RunSpecs.adapterPhaseStart(resolved);
        this.adapterRank = resolved.adapters().rank();
        this.seed = resolved.training().seed();
        this.preset = resolved.model().preset();
        this.info = info;
        this.sequencesPerPass = batchSize;
    }

    /** The first step of the adapter phase ({@link RunSpecs#adapterPhaseStart}): the run's steps when it adds none. */
    public int adapterStartStep() {
        return adapterStartStep;
    }

    /**
     * Attaches fresh adapters (docs/method.md) when {@code step} is the adapter phase's and the model has none yet;
     * returns whether it did. A model restored from a checkpoint of the adapter phase already has them.
     */
    public boolean attachAdaptersIfDue(int step) {
        if (step < adapterStartStep || model.hasAdapters()) {
            return false;
        }
        try {
            model.attachAdapters(GptModel.initialAdapterWeights(model.config(), adapterRank, seed), adapterRank,
                    1.0 / adapterRank);
            useModelParameters();
        } catch (OutOfDeviceMemory e) {
            throw modelTooLarge("while attaching the adapters", e);
        }
        return true;
    }

    /** Takes the model's current parameters: their ZeRO-1 owners, the moments this rank updates, gradient buckets. */
    private void useModelParameters() {
        parameters = model.parameters();
        optimizer.assignOwners(parameters);
        // The moments are made now rather than at the first update, so that a device short of memory runs out in
        // forward/backward, where the step can start over in smaller passes, and not in the optimizer.
        parameters.stream().filter(optimizer::owns).forEach(optimizer::moments);
        buckets = gradientBuckets(parameters);
        zeroedEachStep = new ArrayList<>(parameters.stream().map(Parameter::grad).toList());
        zeroedEachStep.add(lossSum);
    }

    /**
     * Sums every gradient over the ranks, one bucket per transformer block and one for the rest (the embeddings and
     * the final LayerNorm), in place on the backend (NCCL: on the device, no host copy); then the step's loss, a host
     * scalar. Returns the summed loss.
     */
    private double allReduceGradients(double localLoss) {
        for (List<Tensor> bucket : buckets) {
            collective.allReduceSum(backend(), bucket);
        }
        return collective.allReduceSum(new double[] {localLoss})[0];
    }

    /** The gradients grouped by block ({@code h.<l>.…}, adapters included), in declared order; the rest last. */
    static List<List<Tensor>> gradientBuckets(List<Parameter> parameters) {
        Map<String, List<Tensor>> buckets = new LinkedHashMap<>();
        List<Tensor> rest = new ArrayList<>();
        for (Parameter p : parameters) {
            Matcher m = BLOCK.matcher(p.name());
            if (m.lookingAt()) {
                buckets.computeIfAbsent(m.group(), k -> new ArrayList<>()).add(p.grad());
            } else {
                rest.add(p.grad());
            }
        }
        List<List<Tensor>> out = new ArrayList<>(buckets.values());
        if (!rest.isEmpty()) {
            out.add(rest);
        }
        return out;
    }

    /** Every rank takes each parameter's new value from its ZeRO-1 owner, in one grouped broadcast. */
    private void broadcastUpdatedValues() {
        List<Tensor> values = new ArrayList<>(parameters.size());
        int[] owners = new int[parameters.size()];
        for (int i = 0; i < parameters.size(); i++) {
            values.add(parameters.get(i).value());
            owners[i] = optimizer.owner(parameters.get(i));
        }
        collective.broadcast(backend(), values, owners);
    }

    private Backend backend() {
        return model.backend();
    }

    public AdamW optimizer() {
        return optimizer;
    }

    /** Sequences per forward/backward pass: {@code training.batchSize} unless the device ran out of memory at it. */
    public int sequencesPerPass() {
        return sequencesPerPass;
    }

    /** One optimizer step; adapters are attached first when the step is the adapter phase's first. */
    public StepStats step(int step) {
        attachAdaptersIfDue(step);
        long start = System.nanoTime();
        int T = model.config().seqLen();
        accumulateGradients(step);
        double lr = schedule.at(step);
        boolean distributed = collective.worldSize() > 1;
        double stepLossSum = Double.NaN;
        try {
            if (distributed) {
                stepLossSum = allReduceGradients(model.backend().download(lossSum)[0]);
            }
            optimizer.step(parameters, lr);
            if (distributed) {
                broadcastUpdatedValues();
            }
            // The column mask used by step k's backward is refreshed from W^R at the start of step k when
            // k % refresh = 0.
            boolean refresh = (step + 1) % columnMaskRefresh == 0;
            for (Parameter p : parameters) {
                if (p.isSparse()) {
                    model.backend().updateSparseOperands(p.sparse(), refresh);
                }
            }
        } catch (OutOfDeviceMemory e) {
            throw modelTooLarge("in the optimizer step", e);
        }
        if (!distributed) {
            // Read only now that the whole step is queued: an earlier read would idle the GPU while the host queues.
            stepLossSum = model.backend().download(lossSum)[0];
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return new StepStats(step, stepLossSum / gradAccum, lr, optimizer.lastGradNorm(),
                (long) batchSize * T * gradAccum, seconds, sequencesPerPass);
    }

    /**
     * Zeroes the gradients and runs this rank's micro-batches through forward and backward, the sum of their mean
     * losses into {@link #lossSum}. Out of device memory, the activations of the failed size are given back and the
     * step starts over in smaller passes, said once when it succeeds; one sequence per pass that does not fit is an
     * error.
     */
    private void accumulateGradients(int step) {
        OutOfDeviceMemory firstFailure = null;
        int failedSequences = 0;
        while (true) {
            try {
                forwardBackward(step);
                break;
            } catch (OutOfDeviceMemory e) {
                if (firstFailure == null) {
                    firstFailure = e;
                    failedSequences = sequencesPerPass;
                }
                model.releaseActivations(sequencesPerPass);
                int smaller = smallerPass(batchSize, sequencesPerPass);
                if (smaller == 0) {
                    throw modelTooLarge("even at 1 sequence × " + model.config().seqLen() + " tokens in one pass", e);
                }
                sequencesPerPass = smaller;
            }
        }
        if (firstFailure != null) {
            info.accept(String.format(Locale.ROOT, "step %d: out of GPU memory at %d sequences × %d tokens in one "
                    + "pass (%s GiB requested, %s GiB free): running each micro-batch as %d × %d sequences from now "
                    + "on; the same tokens per step", step, failedSequences, model.config().seqLen(),
                    MemoryEstimate.gib(firstFailure.requestedBytes()), MemoryEstimate.gib(firstFailure.freeBytes()),
                    batchSize / sequencesPerPass, sequencesPerPass));
        }
    }

    /**
     * One attempt at the step's gradients: each micro-batch in passes of {@link #sequencesPerPass} of its windows, all
     * with the step's one gradient scale, so the passes add up to the micro-batch's gradient; its loss is the mean of
     * the passes' mean losses (equal-sized passes: the mean over its tokens).
     */
    private void forwardBackward(int step) {
        model.backend().zero(zeroedEachStep);
        int T = model.config().seqLen();
        double gradScale = 1.0 / ((double) batchSize * T * gradAccum);
        int passes = batchSize / sequencesPerPass;
        for (int micro = collective.rank(); micro < gradAccum; micro += collective.worldSize()) {
            int[] windows = batches.batch(step, micro);
            for (int pass = 0; pass < passes; pass++) {
                int[] part = Windows.sequences(windows, T, pass * sequencesPerPass, sequencesPerPass);
                model.forwardBackward(Windows.inputs(part, T), Windows.targets(part, T), sequencesPerPass,
                        gradScale);
                model.addMeanLoss(lossSum, sequencesPerPass, 1.0 / passes);
            }
        }
    }

    /**
     * The largest divisor of {@code batchSize} at most half of {@code sequences}, so that a micro-batch splits into
     * equal passes; 0 when {@code sequences} is 1.
     */
    static int smallerPass(int batchSize, int sequences) {
        for (int s = sequences / 2; s >= 1; s--) {
            if (batchSize % s == 0) {
                return s;
            }
        }
        return 0;
    }

    /**
     * The error where smaller passes do not help (one sequence per pass, the optimizer, attaching the adapters): what
     * was asked for and free, and the model fields to lower.
     */
    private OutOfDeviceMemory modelTooLarge(String when, OutOfDeviceMemory e) {
        GptConfig c = model.config();
        String message = String.format(Locale.ROOT, "out of GPU memory %s (%s GiB requested, %s GiB free): the "
                + "model does not fit this device; lower model.seqLen (%d), model.dModel (%d) or model.layers (%d)%s",
                when, MemoryEstimate.gib(e.requestedBytes()), MemoryEstimate.gib(e.freeBytes()), c.seqLen(),
                c.dModel(), c.layers(), preset == null || preset.ordinal() == 0 ? ""
                        : ", or choose a smaller model.preset than \"" + preset.wireName() + "\"");
        return new OutOfDeviceMemory(message, e.requestedBytes(), e.freeBytes(), e);
    }
}
