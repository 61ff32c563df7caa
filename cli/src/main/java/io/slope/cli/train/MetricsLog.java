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
 * read back exactly), then hands every event to {@code next}. A resumed run appends: a step that appears twice was
 * trained again after a restart, and its last line counts. The file is opened at the first step, when the run folder
 * exists.
 */
final class MetricsLog implements TrainingSession.Listener, AutoCloseable {
    static final String FILE = "metrics.jsonl";

    private final Path file;
    private final TrainingSession.Listener next;
    private BufferedWriter writer;

    MetricsLog(Path runDir, TrainingSession.Listener next) {
        this.file = runDir.resolve(FILE);
        this.next = next;
    }

    @Override
    public void onInfo(String line) {
        next.onInfo(line);
    }

    @Override
    public void onEval(int step, String form, double valLoss) {
        next.onEval(step, form, valLoss);
    }

    @Override
    public void onStep(Trainer.StepStats s, int totalSteps) {
        try {
            if (writer == null) {
                writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
            }
            writer.write("{\"step\":" + s.step() + ",\"loss\":" + s.loss() + ",\"lr\":" + s.lr() + ",\"grad_norm\":"
                    + s.gradNorm() + ",\"tokens\":" + s.tokens() + ",\"seconds\":" + s.seconds()
                    + ",\"sequences_per_pass\":" + s.sequencesPerPass() + "}\n");
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
        next.onStep(s, totalSteps);
    }

    @Override
    public void close() throws IOException {
        if (writer != null) {
            writer.close();
        }
    }
}
