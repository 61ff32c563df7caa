package io.slope.cli.train;

import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import java.io.PrintStream;

/**
 * Training progress for people: on a terminal one progress bar redrawn in place (step, loss, tokens/s, ETA), elsewhere
 * (logs, pipes, CI) plain lines about every {@code logEvery} steps. Info and eval lines are printed either way.
 */
final class ProgressPrinter implements TrainingSession.Listener {
    private static final int BAR_WIDTH = 30;

    private final PrintStream out;
    private final boolean terminal;
    private final Integer logEvery;
    private double secondsSum;
    private int stepsTimed;
    private boolean barShown;

    ProgressPrinter(PrintStream out, boolean terminal, Integer logEvery) {
        this.out = out;
        this.terminal = terminal;
        this.logEvery = logEvery;
    }

    static ProgressPrinter forStdout(Integer logEvery) {
        var console = System.console();
        return new ProgressPrinter(System.out, console != null && console.isTerminal(), logEvery);
    }

    @Override
    public void onInfo(String line) {
        println(line);
    }

    @Override
    public void onStep(Trainer.StepStats s, int totalSteps) {
        // The first step pays for JIT warm-up and buffer allocation; leave it out of the ETA.
        if (s.step() > 0 || totalSteps == 1) {
            secondsSum += s.seconds();
            stepsTimed++;
        }
        int done = s.step() + 1;
        double tokensPerSecond = s.tokens() / s.seconds();
        if (terminal) {
            int filled = (int) ((long) BAR_WIDTH * done / totalSteps);
            out.printf("\r[%s%s] %d/%d  loss %.4f  %,.0f tok/s  ETA %s ", "#".repeat(filled),
                    ".".repeat(BAR_WIDTH - filled), done, totalSteps, s.loss(), tokensPerSecond,
                    eta(totalSteps - done));
            out.flush();
            barShown = true;
            return;
        }
        int every = logEvery != null ? Math.max(1, logEvery) : Math.max(1, totalSteps / 50);
        if (done % every == 0 || s.step() == 0 || done == totalSteps) {
            out.printf("step %d/%d  loss %.4f  lr %.2e  grad-norm %.3f  %,.0f tok/s  ETA %s%n", done, totalSteps,
                    s.loss(), s.lr(), s.gradNorm(), tokensPerSecond, eta(totalSteps - done));
        }
    }

    @Override
    public void onEval(int step, String form, double valLoss) {
        println(String.format("eval step %d%s  val_loss %.4f  ppl %.2f", step,
                form.equals("sparse") ? " (end of the sparse phase)" : "", valLoss, Math.exp(valLoss)));
    }

    private String eta(int stepsLeft) {
        if (stepsTimed == 0) {
            return "?";
        }
        long seconds = Math.round(secondsSum / stepsTimed * stepsLeft);
        return seconds >= 3600 ? String.format("%dh%02dm", seconds / 3600, seconds / 60 % 60)
                : String.format("%dm%02ds", seconds / 60, seconds % 60);
    }

    private void println(String line) {
        if (barShown) {
            out.println();
            barShown = false;
        }
        out.println(line);
    }
}
