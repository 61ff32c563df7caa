package io.slope.cli.train;

import io.slope.engine.run.LocalTrainingRun;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import sun.misc.Signal;

/**
 * Ctrl-C (SIGINT) and SIGTERM for {@code slope train}, one rank or a launcher and its ranks. Inside the training loop
 * the first signal asks the run to stop after the current step, with a checkpoint there; a second quits at once (the
 * steps since the last checkpoint are lost). Outside it (data preparation and the first checkpoint, the final
 * evaluation and exports) there is no step to wait for, so the first signal quits at once: before the first checkpoint
 * nothing is trained, and after the last one a resume only evaluates and exports. Once the loop has stopped early
 * (its checkpoint committed), a request changes nothing: the process is about to exit anyway.
 *
 * <p>Quitting halts the JVM with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), after
 * {@link Actions#quit} and {@link Actions#cleanUp}; it halts rather than exits so that the thread still preparing data
 * cannot write the folder it removed again while shutdown hooks run. SIGINT and SIGTERM are handled alike and counted
 * together. {@code sun.misc.Signal} (module jdk.unsupported, in the device bundle's runtime too) rather than a shutdown
 * hook: a hook cannot keep the JVM from exiting, and it would have to block exit for a whole step and a checkpoint. A
 * JVM run with {@code -Xrs} keeps the default handlers: a signal ends it.
 */
final class GracefulStop implements LocalTrainingRun.Stop {
    static final int SIGINT = 2;
    static final int SIGTERM = 15;
    /** How often a rank looks for its launcher's stop file. */
    private static final Duration POLL = Duration.ofMillis(100);

    /** What a stop does beyond the flag, on the thread that delivered the request. */
    interface Actions {
        /** The first request inside the training loop, once it is said (on the thread that delivered it). */
        default void requested() {}

        /**
         * Quitting now, about to exit with {@code exitCode}: stop what must stop; returns what is left (said after
         * "quitting now.").
         */
        String quit(int exitCode);

        /**
         * The last thing before the JVM halts (no shutdown hooks run): remove what must not stay. Other threads still
         * run until the halt, so whatever they might write again is removed here, right before it.
         */
        default void cleanUp() {}
    }

    private final PrintStream messages;
    private final String who;
    private final String stopsWhat;
    private final Actions actions;
    private boolean inLoop;
    private int signals;
    private volatile boolean requested;
    private volatile int firstSignal;
    private volatile int stepsDone = -1;
    private volatile int totalSteps = -1;

    /**
     * @param messages where to say what a signal does; null: say nothing (rank 0, whose launcher speaks)
     * @param who the message's prefix ("slope train", "rank 1")
     * @param stopsWhat what stops ("", " all 2 ranks")
     */
    private GracefulStop(PrintStream messages, String who, String stopsWhat, Actions actions) {
        this.messages = messages;
        this.who = who;
        this.stopsWhat = stopsWhat;
        this.actions = actions;
    }

    /** Handles SIGINT and SIGTERM from here on in this JVM. */
    static GracefulStop install(PrintStream messages, String who, String stopsWhat, Actions actions) {
        GracefulStop stop = new GracefulStop(messages, who, stopsWhat, actions);
        for (String name : new String[] {"INT", "TERM"}) {
            try {
                Signal.handle(new Signal(name), s -> stop.signal("SIG" + s.getName(), s.getNumber()));
            } catch (IllegalArgumentException e) {
                // -Xrs, or a signal this platform lacks or reserves: it keeps its default (the JVM exits).
            }
        }
        return stop;
    }

    /**
     * A request from {@code stopFile} (the launcher's: it got the signal, and its ranks may have got it as well) once
     * the file appears, looked for by a daemon thread: a request like a first signal, but never a second one, so that a
     * Ctrl-C that reached both the launcher and this rank is one request.
     */
    void watch(Path stopFile) {
        Thread.ofPlatform().daemon().name("slope-stop-file").start(() -> {
            try {
                while (!Files.exists(stopFile)) {
                    Thread.sleep(POLL);
                }
                request("the launcher's stop request", SIGINT, false);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }

    private void signal(String name, int number) {
        request(name, number, true);
    }

    private void request(String why, int number, boolean isSignal) {
        boolean quit;
        synchronized (this) {
            if (!isSignal && (requested || signals > 0)) {
                return; // the same request as a signal's
            }
            if (stepsDone >= 0 && stepsDone < totalSteps) {
                return; // the training loop stopped early, its checkpoint committed: this process ends now anyway
            }
            if (isSignal) {
                signals++;
            }
            quit = !inLoop || (isSignal && signals > 1);
            if (!quit && !requested) {
                requested = true;
                firstSignal = number;
                say(why + ": stopping" + stopsWhat + " after this step (a checkpoint is written there); press Ctrl-C "
                        + "again to quit now (the steps since the last checkpoint are then lost)");
                actions.requested();
            }
        }
        if (quit) {
            int code = 128 + number;
            say(why + ": quitting now. " + actions.quit(code));
            System.out.flush();
            System.err.flush();
            actions.cleanUp();
            Runtime.getRuntime().halt(code);
        }
    }

    /** A line on {@link #messages}, on a line of its own even when a progress bar is drawn. */
    void say(String line) {
        if (messages != null) {
            var console = System.console();
            messages.println((console != null && console.isTerminal() ? "\n" : "") + who + ": " + line);
            messages.flush();
        }
    }

    @Override
    public boolean requested() {
        return requested;
    }

    @Override
    public synchronized void trainingBegins() {
        inLoop = true;
    }

    @Override
    public synchronized void trainingEnded(int stepsDone, int totalSteps) {
        inLoop = false;
        this.stepsDone = stepsDone;
        this.totalSteps = totalSteps;
    }

    /**
     * Blocks the calling thread for good once this stop is quitting (the handler that quits halts the JVM with its own
     * status), so that the caller does not exit first with another.
     */
    static void awaitHalt() throws InterruptedException {
        while (true) {
            Thread.sleep(Duration.ofHours(1));
        }
    }

    /**
     * Removes a new run's folder when it holds no committed checkpoint ({@link LocalTrainingRun#deleteIfUnstarted});
     * returns why it could not, or null.
     */
    static String deleteIfUnstarted(Path runDir, boolean created) {
        try {
            LocalTrainingRun.deleteIfUnstarted(runDir, created);
            return null;
        } catch (IOException | UncheckedIOException e) {
            return "could not remove " + runDir + ": " + e;
        }
    }

    /** The exit status of a run that stopped early: 128 + the first request's signal (SIGINT for a stop file). */
    int exitCode() {
        return 128 + (firstSignal == 0 ? SIGINT : firstSignal);
    }

    /** Steps trained when the training loop ended; -1 while it has not. */
    int stepsDone() {
        return stepsDone;
    }

    int totalSteps() {
        return totalSteps;
    }
}
