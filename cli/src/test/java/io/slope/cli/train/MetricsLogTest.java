package io.slope.cli.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsLogTest {
    @TempDir
    Path runDir;

    @Test
    void stepsGoToMetricsAndEvaluationsToEvalsEachLineReadingBackExactly() throws Exception {
        TrainingSession.Listener quiet = new TrainingSession.Listener() {};
        try (MetricsLog log = new MetricsLog(runDir, quiet)) {
            log.onStep(new Trainer.StepStats(0, 4.1, 1e-4, 0.5, 128, 0.25, 2), 3);
            log.onStep(new Trainer.StepStats(1, 3.9, 2e-4, 0.4, 128, 0.125, 2), 3);
            log.onEval(2, "sparse", 3.8000000000000003);
        }
        try (MetricsLog resumed = new MetricsLog(runDir, quiet)) {
            resumed.onStep(new Trainer.StepStats(2, 3.7, 3e-4, 0.3, 128, 0.5, 1), 3);
            resumed.onEval(3, "current", 3.6);
        }

        assertEquals(List.of(
                "{\"step\":0,\"loss\":4.1,\"lr\":1.0E-4,\"grad_norm\":0.5,\"tokens\":128,\"seconds\":0.25,"
                        + "\"sequences_per_pass\":2}",
                "{\"step\":1,\"loss\":3.9,\"lr\":2.0E-4,\"grad_norm\":0.4,\"tokens\":128,\"seconds\":0.125,"
                        + "\"sequences_per_pass\":2}",
                "{\"step\":2,\"loss\":3.7,\"lr\":3.0E-4,\"grad_norm\":0.3,\"tokens\":128,\"seconds\":0.5,"
                        + "\"sequences_per_pass\":1}"),
                Files.readAllLines(runDir.resolve(MetricsLog.FILE)));
        assertEquals(List.of(
                "{\"step\":2,\"form\":\"sparse\",\"val_loss\":3.8000000000000003}",
                "{\"step\":3,\"form\":\"current\",\"val_loss\":3.6}"),
                Files.readAllLines(runDir.resolve(MetricsLog.EVALS_FILE)));
    }
}
