package io.slope.cli.train;

import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Appends one JSON line per trained step to {@code <run dir>/metrics.jsonl} ({@code step} 0-based, {@code loss},
 * {@code lr}, {@code grad_norm}, {@code tokens}, {@code seconds}, {@code sequences_per_pass}; doubles printed so they
 * read back exactly) and one per evaluation during training to {@code <run dir>/evals.jsonl} ({@code step}: steps
 * done, {@code form}: {@code current} every {@code eval.every} steps and at the end, {@code sparse} at the end of the
 * sparse phase, {@code val_loss}), then hands every event to {@code next}. A resumed run appends: a step that appears
 * twice was trained again after a restart, and its last line counts. Each file is opened at its first line, when the
 * run folder exists.
 */
final class MetricsLog implements TrainingSession.Listener, AutoCloseable {
    static final String FILE = "metrics.jsonl";
    static final String EVALS_FILE = "evals.jsonl";

    private final Lines steps;
    private final Lines evals;
    private final TrainingSession.Listener next;

    MetricsLog(Path runDir, TrainingSession.Listener next) {
        this.steps = new Lines(runDir.resolve(FILE));
        this.evals = new Lines(runDir.resolve(EVALS_FILE));
        this.next = next;
    }

    @Override
    public void onInfo(String line) {
        next.onInfo(line);
    }

    @Override
    public void onEval(int step, String form, double valLoss) {
        evals.append("{\"step\":" + step + ",\"form\":\"" + form + "\",\"val_loss\":" + valLoss + "}");
        next.onEval(step, form, valLoss);
    }

    @Override
    public void onStep(Trainer.StepStats s, int totalSteps) {
        steps.append("{\"step\":" + s.step() + ",\"loss\":" + s.loss() + ",\"lr\":" + s.lr() + ",\"grad_norm\":"
                + s.gradNorm() + ",\"tokens\":" + s.tokens() + ",\"seconds\":" + s.seconds()
                + ",\"sequences_per_pass\":" + s.sequencesPerPass() + "}");
        next.onStep(s, totalSteps);
    }

    @Override
    public void close() throws IOException {
        try {
            steps.close();
        } finally {
            evals.close();
        }
    }

    /** A JSON lines file appended to and flushed line by line, opened at its first line. */
    private static final class Lines implements AutoCloseable {
        private final Path file;
        private BufferedWriter writer;

        Lines(Path file) {
            this.file = file;
        }

        void append(String line) {
            try {
                if (writer == null) {
                    writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                            StandardOpenOption.APPEND);
                }
                writer.write(line + "\n");
                writer.flush();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void close() throws IOException {
            if (writer != null) {
                writer.close();
            }
        }
    }
}
