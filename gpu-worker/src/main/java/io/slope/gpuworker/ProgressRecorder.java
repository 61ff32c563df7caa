package io.slope.gpuworker;

import io.slope.catalogue.RunCatalogue;
import io.slope.engine.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Batched bookkeeping from the training loop: steps of the loss curve, evaluations and info lines are buffered and
 * written together every {@code flushEvery} steps or seconds (and at the end of a chunk). Writes are idempotent, so a
 * replayed step changes nothing; when Postgres is unreachable the batch is kept for the next flush (bounded), and
 * training goes on: bookkeeping never stops the model.
 */
final class ProgressRecorder {
    private static final int MAX_BUFFERED = 100_000;
    private static final System.Logger LOG = System.getLogger(ProgressRecorder.class.getName());

    private record Eval(int step, String name, double value) {}

    private final RunCatalogue catalogue;
    private final UUID runId;
    private final List<RunCatalogue.ProgressSample> samples = new ArrayList<>();
    private final List<Eval> evals = new ArrayList<>();
    private final List<String> infos = new ArrayList<>();
    private long lastFlushNanos = System.nanoTime();

    ProgressRecorder(RunCatalogue catalogue, UUID runId) {
        this.catalogue = catalogue;
        this.runId = runId;
    }

    synchronized void step(Trainer.StepStats s) {
        if (samples.size() < MAX_BUFFERED) {
            samples.add(new RunCatalogue.ProgressSample(s.step() + 1, s.loss(), s.lr(), s.tokens(),
                    s.seconds() > 0 ? s.tokens() / s.seconds() : 0));
        }
        if (samples.size() >= 50 || System.nanoTime() - lastFlushNanos > 2_000_000_000L) {
            flush();
        }
    }

    synchronized void eval(int step, String name, double value) {
        evals.add(new Eval(step, name, value));
    }

    synchronized void info(String line) {
        infos.add(line);
    }

    /** Writes what is buffered; on failure keeps it for the next call. */
    synchronized void flush() {
        lastFlushNanos = System.nanoTime();
        try {
            catalogue.recordProgress(runId, samples);
            samples.clear();
            for (Eval e : evals) {
                catalogue.recordEval(runId, e.step(), e.name(), e.value());
            }
            evals.clear();
            for (String line : infos) {
                catalogue.event(runId, line.startsWith("skipped checkpoint") ? "WARN" : "INFO", null, line);
            }
            infos.clear();
        } catch (java.sql.SQLException | RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "run " + runId + ": progress not recorded yet (" + e.getMessage()
                    + "); will retry with the next batch");
        }
    }
}
