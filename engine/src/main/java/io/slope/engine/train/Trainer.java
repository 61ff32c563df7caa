package io.slope.engine.train;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Tensor;
import io.slope.engine.data.BatchSource;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.parallel.Collective;
import io.slope.spec.DataParallel;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecs;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 */
public final class Trainer {
    private static final Pattern BLOCK = Pattern.compile("h\\.\\d+\\.");

    /** What one step did; {@code loss} is the mean training loss over the step's tokens, before the update. */
    public record StepStats(int step, double loss, double lr, double gradNorm, long tokens, double seconds) {}

    private final GptModel model;
    private final Collective collective;
    private final BatchSource batches;
    private final AdamW optimizer;
    private final LrSchedule schedule;
    private final int batchSize;
    private final int gradAccum;
    private final int columnMaskRefresh;
    private final int adapterStartStep;
    private final int adapterRank;
    private final long seed;
    private List<Parameter> parameters;
    /** {@link #gradientBuckets} of {@link #parameters}, made when they change (construction, adapters attached). */
    private List<List<Tensor>> buckets;

    public Trainer(GptModel model, RunSpec resolved, BatchSource batches) {
        this(model, resolved, batches, Collective.single());
    }

    public Trainer(GptModel model, RunSpec resolved, BatchSource batches, Collective collective) {
        int ranks = collective.worldSize();
        if (!DataParallel.fits(ranks, resolved.training().gradAccum())) {
            throw new IllegalArgumentException(DataParallel.whyNot(ranks, resolved.training().gradAccum()));
        }
        this.model = model;
        this.collective = collective;
        this.batches = batches;
        this.optimizer = new AdamW(model.backend(), resolved.optimizer(), collective.rank(), ranks);
        useModelParameters();
        this.schedule = LrSchedule.of(resolved);
        this.batchSize = resolved.training().batchSize();
        this.gradAccum = resolved.training().gradAccum();
        this.columnMaskRefresh = resolved.sparsity().columnMaskRefresh();
        this.adapterStartStep = RunSpecs.adapterPhaseStart(resolved);
        this.adapterRank = resolved.adapters().rank();
        this.seed = resolved.training().seed();
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
        model.attachAdapters(GptModel.initialAdapterWeights(model.config(), adapterRank, seed), adapterRank,
                1.0 / adapterRank);
        useModelParameters();
        return true;
    }

    /** Takes the model's current parameters: their ZeRO-1 owners and gradient buckets. */
    private void useModelParameters() {
        parameters = model.parameters();
        optimizer.assignOwners(parameters);
        buckets = gradientBuckets(parameters);
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

    /** One optimizer step; adapters are attached first when the step is the adapter phase's first. */
    public StepStats step(int step) {
        attachAdaptersIfDue(step);
        long start = System.nanoTime();
        for (Parameter p : parameters) {
            model.backend().zero(p.grad());
        }
        int T = model.config().seqLen();
        double gradScale = 1.0 / ((double) batchSize * T * gradAccum);
        double lossSum = 0;
        for (int micro = collective.rank(); micro < gradAccum; micro += collective.worldSize()) {
            int[] windows = batches.batch(step, micro);
            model.forwardBackward(Windows.inputs(windows, T), Windows.targets(windows, T), batchSize, gradScale);
            lossSum += model.meanLoss(batchSize);
        }
        if (collective.worldSize() > 1) {
            lossSum = allReduceGradients(lossSum);
        }
        double lr = schedule.at(step);
        optimizer.step(parameters, lr);
        if (collective.worldSize() > 1) {
            broadcastUpdatedValues();
        }
        // The column mask used by step k's backward is refreshed from W^R at the start of step k when k % refresh = 0.
        boolean refresh = (step + 1) % columnMaskRefresh == 0;
        for (Parameter p : parameters) {
            if (p.isSparse()) {
                model.backend().updateSparseOperands(p.sparse(), refresh);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return new StepStats(step, lossSum / gradAccum, lr, optimizer.lastGradNorm(),
                (long) batchSize * T * gradAccum, seconds);
    }
}
