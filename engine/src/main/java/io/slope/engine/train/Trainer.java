package io.slope.engine.train;

import io.slope.engine.data.BatchSource;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.spec.RunSpec;
import java.util.List;

/**
 * One optimizer step: micro-batches with gradients averaged over every token of the step, global-norm clipping, AdamW,
 * then the sparse operands rebuilt from the new values (with a column-mask refresh every {@code columnMaskRefresh}
 * steps).
 */
public final class Trainer {
    /** What one step did; {@code loss} is the mean training loss over the step's tokens, before the update. */
    public record StepStats(int step, double loss, double lr, double gradNorm, long tokens, double seconds) {}

    private final GptModel model;
    private final BatchSource batches;
    private final AdamW optimizer;
    private final LrSchedule schedule;
    private final int batchSize;
    private final int gradAccum;
    private final int columnMaskRefresh;
    private final List<Parameter> parameters;

    public Trainer(GptModel model, RunSpec resolved, BatchSource batches) {
        this.model = model;
        this.batches = batches;
        this.optimizer = new AdamW(model.backend(), resolved.optimizer());
        this.schedule = LrSchedule.of(resolved);
        this.batchSize = resolved.training().batchSize();
        this.gradAccum = resolved.training().gradAccum();
        this.columnMaskRefresh = resolved.sparsity().columnMaskRefresh();
        this.parameters = model.parameters();
    }

    public AdamW optimizer() {
        return optimizer;
    }

    public StepStats step(int step) {
        long start = System.nanoTime();
        for (Parameter p : parameters) {
            model.backend().zero(p.grad());
        }
        int T = model.config().seqLen();
        double gradScale = 1.0 / ((double) batchSize * T * gradAccum);
        double lossSum = 0;
        for (int micro = 0; micro < gradAccum; micro++) {
            int[] windows = batches.batch(step, micro);
            model.forwardBackward(Windows.inputs(windows, T), Windows.targets(windows, T), batchSize, gradScale);
            lossSum += model.meanLoss(batchSize);
        }
        double lr = schedule.at(step);
        optimizer.step(parameters, lr);
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
