package io.slope.engine.train;

import io.slope.engine.backend.AdamWStep;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.model.Parameter;
import io.slope.spec.RunSpec;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW exactly as torch.optim.AdamW, with global-norm clipping over all gradients (SLOPE.md §0). Weight decay applies
 * to parameters flagged {@code decay} (matrices); sparse layers carry moments for kept weights only, so pruned weights
 * never move off zero. Each parameter group counts its own steps, so adapters joining late start at t = 1.
 */
public final class AdamW {
    private final Backend backend;
    private final RunSpec.Optimizer hyper;
    private final Tensor gradNormSquared;
    private final Map<Parameter.Group, Long> steps = new EnumMap<>(Parameter.Group.class);

    public AdamW(Backend backend, RunSpec.Optimizer hyper) {
        this.backend = backend;
        this.hyper = hyper;
        this.gradNormSquared = backend.zeros(DType.F64, 1);
    }

    /** Optimizer steps a group has taken so far (its bias-correction count). */
    public long stepsTaken(Parameter.Group group) {
        return steps.getOrDefault(group, 0L);
    }

    /** Resumes a group's bias-correction count from a checkpoint. */
    public void restoreStepsTaken(Parameter.Group group, long taken) {
        steps.put(group, taken);
    }

    /** Clips by the global gradient norm and updates every parameter, in declared order. */
    public void step(List<Parameter> parameters, double lr) {
        backend.zero(gradNormSquared);
        for (Parameter p : parameters) {
            backend.sumOfSquares(gradNormSquared, p.grad());
        }
        parameters.stream().map(Parameter::group).distinct().forEach(g -> steps.merge(g, 1L, Long::sum));
        for (Parameter p : parameters) {
            AdamWStep s = new AdamWStep(lr, hyper.beta1(), hyper.beta2(), hyper.eps(),
                    p.decay() ? hyper.weightDecay() : 0.0, steps.get(p.group()), hyper.gradClip());
            backend.adamw(p.value(), p.grad(), p.m(), p.v(), gradNormSquared, s);
        }
    }

    /** The global gradient norm of the last step, before clipping (a synchronising read). */
    public double lastGradNorm() {
        return Math.sqrt(backend.download(gradNormSquared)[0]);
    }
}
