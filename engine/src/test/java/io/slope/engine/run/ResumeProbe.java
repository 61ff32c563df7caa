package io.slope.engine.run;

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
    };
}
