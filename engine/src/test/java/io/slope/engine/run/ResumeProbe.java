package io.slope.engine.run;

import io.slope.engine.train.Trainer;
import java.nio.file.Path;

/** Resumes a run folder in a freshly started JVM, for {@link ExactResumeTest}. */
public final class ResumeProbe {
    private ResumeProbe() {}

    public static void main(String[] args) throws Exception {
        LocalTrainingRun.resume(Path.of(args[0]), QUIET);
    }

    static final TrainingSession.Listener QUIET = new TrainingSession.Listener() {
        @Override
        public void onInfo(String line) {
            System.out.println(line);
        }

        @Override
        public void onStep(Trainer.StepStats stats, int totalSteps) {}

        @Override
        public void onEval(int step, String form, double valLoss) {}
    };
}
