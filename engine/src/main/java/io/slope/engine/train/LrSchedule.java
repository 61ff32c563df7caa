package io.slope.engine.train;

import io.slope.spec.ResolvedSpec;

/**
 * Linear warmup, then linear decay to {@code minLrRatio}·peak (docs/method.md). For 0-based optimizer step t:
 * peak·(t+1)/warmup while t &lt; warmup, then peak·(min + (1 − min)·(steps − t)/(steps − warmup)). The first step
 * already has a nonzero rate, and the rate reaches min·peak one step after the last.
 */
public record LrSchedule(double peak, int warmupSteps, int totalSteps, double minLrRatio) {

    public static LrSchedule of(ResolvedSpec resolved) {
        ResolvedSpec.Optimizer o = resolved.optimizer();
        return new LrSchedule(o.lr(), o.warmupSteps(), resolved.training().steps(), o.minLrRatio());
    }

    public double at(int step) {
        if (step < warmupSteps) {
            return peak * (step + 1) / warmupSteps;
        }
        double remaining = (double) (totalSteps - step) / (totalSteps - warmupSteps);
        return peak * (minLrRatio + (1.0 - minLrRatio) * Math.max(0.0, remaining));
    }
}
