package io.slope.engine.train;

import io.slope.engine.backend.AdamWStep;
import io.slope.engine.backend.AdamWUpdate;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.model.Parameter;
import io.slope.spec.ResolvedSpec;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW exactly as torch.optim.AdamW, with global-norm clipping over all gradients (docs/method.md). Weight decay applies
 * to parameters flagged {@code decay} (matrices); sparse layers carry moments for kept weights only, so pruned weights
 * never move off zero. Each parameter group counts its own steps, so adapters joining late start at t = 1.
 *
 * <p>The moments live here, created at a parameter's first update, and only for the parameters this optimizer
 * {@code owns}: in data-parallel training each rank updates its own shard (ZeRO-1) and holds no state for the rest.
 */
public final class AdamW {
    /** A parameter's first and second moments, shaped like its value. */
    public record Moments(Tensor m, Tensor v) {}

    private final Backend backend;
    private final ResolvedSpec.Optimizer hyper;
    private final int rank;
    private final int worldSize;
    /** ZeRO-1 shard owner per parameter, assigned greedily (least-loaded rank) in declared order. */
    private final Map<String, Integer> owners = new LinkedHashMap<>();
    private final long[] load;
    private final Tensor gradNormSquared;
    private final Map<Parameter.Group, Long> steps = new EnumMap<>(Parameter.Group.class);
    private final Map<String, Moments> moments = new LinkedHashMap<>();

    /** An optimizer that updates every parameter (one rank). */
    public AdamW(Backend backend, ResolvedSpec.Optimizer hyper) {
        this(backend, hyper, 0, 1);
    }

    /** Rank {@code rank}'s shard of a ZeRO-1 optimizer over {@code worldSize} ranks. */
    public AdamW(Backend backend, ResolvedSpec.Optimizer hyper, int rank, int worldSize) {
        this.backend = backend;
        this.hyper = hyper;
        this.rank = rank;
        this.worldSize = worldSize;
        this.load = new long[worldSize];
        this.gradNormSquared = backend.zeros(DType.F64, 1);
    }

    /**
     * Assigns owners to parameters not seen before, in the order given. Every rank passes the same declared-order list,
     * so all agree; parameters appended later (adapters) never move the earlier ones.
     */
    public void assignOwners(List<Parameter> parameters) {
        for (Parameter p : parameters) {
            if (owners.containsKey(p.name())) {
                continue;
            }
            int least = 0;
            for (int r = 1; r < worldSize; r++) {
                if (load[r] < load[least]) {
                    least = r;
                }
            }
            owners.put(p.name(), least);
            load[least] += p.value().size();
        }
    }

    /** The rank whose shard updates {@code p}. */
    public int owner(Parameter p) {
        Integer owner = owners.get(p.name());
        if (owner == null) {
            throw new IllegalStateException("no owner assigned to " + p.name() + "; call assignOwners first");
        }
        return owner;
    }

    public boolean owns(Parameter p) {
        return owner(p) == rank;
    }

    /** Optimizer steps a group has taken so far (its bias-correction count). */
    public long stepsTaken(Parameter.Group group) {
        return steps.getOrDefault(group, 0L);
    }

    /** Resumes a group's bias-correction count from a checkpoint. */
    public void restoreStepsTaken(Parameter.Group group, long taken) {
        steps.put(group, taken);
    }

    /** The moments of an owned parameter, created (zero) on first use. */
    public Moments moments(Parameter p) {
        if (!owns(p)) {
            throw new IllegalArgumentException("this optimizer shard does not own " + p.name());
        }
        return moments.computeIfAbsent(p.name(), n -> new Moments(backend.zeros(p.value().dtype(),
                p.value().shape()), backend.zeros(p.value().dtype(), p.value().shape())));
    }

    /**
     * Clips by the global gradient norm over {@code parameters} (every rank holds all reduced gradients) and updates
     * the owned ones, in declared order.
     */
    public void step(List<Parameter> parameters, double lr) {
        assignOwners(parameters);
        backend.zero(gradNormSquared);
        backend.sumOfSquares(gradNormSquared, parameters.stream().map(Parameter::grad).toList());
        parameters.stream().map(Parameter::group).distinct().forEach(g -> steps.merge(g, 1L, Long::sum));
        List<AdamWUpdate> updates = new ArrayList<>();
        for (Parameter p : parameters) {
            if (!owns(p)) {
                continue;
            }
            Moments mv = moments(p);
            AdamWStep s = new AdamWStep(lr, hyper.beta1(), hyper.beta2(), hyper.eps(),
                    p.decay() ? hyper.weightDecay() : 0.0, steps.get(p.group()), hyper.gradClip());
            updates.add(new AdamWUpdate(p.value(), p.grad(), mv.m(), mv.v(), s));
        }
        backend.adamw(updates, gradNormSquared);
    }

    /** The global gradient norm of the last step, before clipping (a synchronising read). */
    public double lastGradNorm() {
        return Math.sqrt(backend.download(gradNormSquared)[0]);
    }
}
