package io.slope.cli.train;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Backends;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.engine.run.TrainingSession;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.ResolvedSpec;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * One rank of {@code slope train --ranks N}, started by {@link RankLauncher} (hidden: not for people). It opens the
 * spec's backend and rendezvouses through the backend's {@link CollectiveProvider}, NCCL-style: rank 0 listens and
 * publishes the group's id in a file of the run folder (written whole, then renamed), the other ranks wait for that file
 * and join. Then it trains its share of every step; rank 0 prints progress and the JSON summary.
 */
@Command(name = "train-rank", hidden = true, description = "One rank of `slope train --ranks N` (started by it).")
public final class RankCommand implements Callable<Integer> {
    /**
     * How long a rank waits for rank 0's id, and a peer for its next message: long enough for rank 0 to write a large
     * model's checkpoint or evaluate while the others wait at the next step. A peer that dies is noticed at once (its
     * connection closes, and the launcher sees its exit); this only bounds a hung one.
     */
    static final Duration TIMEOUT = Duration.ofMinutes(30);
    /**
     * The exit status of a rank that stopped at the step the ranks agreed on, on a request (a signal, its launcher's
     * stop file, or a peer's request), after the checkpoint there; EX_TEMPFAIL: the run resumes.
     */
    static final int STOPPED = 75;

    @Option(names = "--run", required = true)
    Path runDir;

    @Option(names = "--rank", required = true)
    int rank;

    @Option(names = "--ranks", required = true)
    int ranks;

    @Option(names = "--rendezvous", required = true, description = "The file rank 0 publishes the group's id in.")
    Path rendezvousFile;

    @Option(names = "--stop-file", required = true,
            description = "The file whose appearance asks the ranks to stop (the launcher's forwarded signal).")
    Path stopFile;

    @Option(names = "--log-every")
    Integer logEvery;

    @Option(names = "--terminal", description = "Draw the progress bar (the launcher's stdout is a terminal).")
    boolean terminal;

    @Override
    public Integer call() throws Exception {
        try {
            return train();
        } catch (IllegalArgumentException | InvalidSpecException e) {
            System.err.println("rank " + rank + ": " + e.getMessage()); // bad input: the message says it all
            return 2;
        } catch (Exception e) {
            // The launcher shows the end of this rank's log: end it with the cause, not with stack frames.
            e.printStackTrace();
            StringBuilder causes = new StringBuilder();
            for (Throwable t = e; t != null; t = t.getCause()) {
                causes.append(causes.isEmpty() ? "" : "; caused by ").append(t);
            }
            System.err.println("rank " + rank + " failed: " + causes);
            return 1;
        }
    }

    private int train() throws Exception {
        // A launcher that is killed outright cannot stop its ranks: a rank whose launcher is gone stops itself.
        ProcessHandle.current().parent().ifPresent(p -> p.onExit().thenRun(() -> Runtime.getRuntime().halt(3)));
        Path pidFile = pidFile(runDir, rank);
        // Rank 0's output is the launcher's, which says what a stop does; the other ranks say it in their logs.
        GracefulStop stop = GracefulStop.install(rank == 0 ? null : System.err, "rank " + rank, "",
                new GracefulStop.Actions() {
                    @Override
                    public String quit(int exitCode) {
                        return "";
                    }

                    @Override
                    public void cleanUp() {
                        pidFile.toFile().delete(); // the halt runs no deleteOnExit
                    }
                });
        stop.watch(stopFile);
        Files.writeString(pidFile, ProcessHandle.current().pid() + "\n");
        pidFile.toFile().deleteOnExit();
        ResolvedSpec spec = LocalTrainingRun.spec(runDir);
        TrainingSession.Listener listener = rank == 0
                ? new MetricsLog(runDir, new ProgressPrinter(System.out, terminal, logEvery))
                : new ProgressPrinter(System.out, false, logEvery);
        // The CPU backend's results do not depend on its thread count (ADR 002), so only the backend sees the change.
        Backend backend = Backends.open(spec.withThreads(threadsPerRank(spec.threads(), ranks)));
        Collective collective;
        try {
            collective = rendezvous(backend.collectives());
        } catch (IOException | RuntimeException e) {
            backend.close();
            throw e;
        }
        try (collective) {
            LocalTrainingRun.Summary summary = LocalTrainingRun.trainRank(spec, runDir, backend, collective, listener,
                    stop);
            if (stop.stepsDone() < stop.totalSteps() || (summary != null && !summary.finished())) {
                stop.say("stopped after step " + stop.stepsDone() + " of " + stop.totalSteps()
                        + (rank == 0 ? " (checkpoint committed)" : " (rank 0 commits the checkpoint)"));
                return STOPPED;
            }
            if (summary != null) {
                TrainCommand.printSummary(summary);
            }
            return 0;
        }
    }

    private Collective rendezvous(CollectiveProvider provider) throws IOException, InterruptedException {
        if (rank == 0) {
            try (CollectiveProvider.Rendezvous host = provider.listen(ranks, TIMEOUT)) {
                DurableFiles.writeAtomically(rendezvousFile, host.uniqueId().getBytes(StandardCharsets.UTF_8));
                return host.awaitPeers();
            }
        }
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!Files.exists(rendezvousFile)) {
            if (System.nanoTime() > deadline) {
                throw new IOException("rank 0 published no rendezvous id in " + rendezvousFile + " within "
                        + TIMEOUT.toMinutes() + " min");
            }
            Thread.sleep(50);
        }
        return provider.join(Files.readString(rendezvousFile).strip(), rank, ranks, TIMEOUT);
    }

    /** {@code <run dir>/rank-<r>.pid}: the rank's process id while it runs. */
    static Path pidFile(Path runDir, int rank) {
        return runDir.resolve("rank-" + rank + ".pid");
    }

    /** "All cores" ({@code threads} 0) is shared among the ranks of this machine; an explicit count is kept per rank. */
    static int threadsPerRank(int threads, int ranks) {
        return threads > 0 ? threads : Math.max(1, Runtime.getRuntime().availableProcessors() / ranks);
    }
}
