package io.slope.cli.train;

import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Dataset;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.spec.BackendChoice;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecs;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * {@code slope train --ranks N} with N > 1, torchrun-style: starts N rank processes ({@link RankCommand}) of this Java
 * with this class path and JVM flags (the heap split among them), waits for them, and stops them all when one fails
 * or when it is stopped itself (Ctrl-C, SIGTERM: after an agreed step, {@link #installStop}). Rank 0's output passes
 * through (and into {@code rank-0.log}); the others write {@code <run dir>/rank-<r>.log}.
 */
final class RankLauncher {
    /** How long a rank has to exit after SIGTERM, once another failed, before it is killed. */
    static final Duration GRACE = Duration.ofSeconds(10);
    private static final String MAIN = "io.slope.cli.SlopeCli";
    /** JVM options whose value is the next argument. */
    private static final Set<String> TAKES_VALUE = Set.of("-p", "--module-path", "--upgrade-module-path",
            "--add-modules", "--limit-modules", "--add-opens", "--add-exports", "--add-reads", "--enable-native-access");
    private static final Map<Integer, String> SIGNALS = Map.of(1, "SIGHUP", 2, "SIGINT", 6, "SIGABRT", 9, "SIGKILL",
            11, "SIGSEGV", 15, "SIGTERM");
    private static final int LOG_TAIL_LINES = 15;

    private final Path runDir;
    private final int ranks;
    private final ResolvedSpec spec;
    private final Integer logEvery;
    private final boolean created;
    private final PrintStream out;
    private final PrintStream err;
    private final Process[] processes;
    /** Ranks this launcher stopped (their exit status is its doing, not theirs). */
    private final boolean[] stoppedHere;
    private final List<Thread> pumps = new ArrayList<>();
    private final Duration stopGrace;
    private final Path rendezvous;
    /** Its appearance asks the ranks to stop after the current step (each rank looks for it). */
    private final Path stopFile;
    private GracefulStop stop;
    /** Set when {@link GracefulStop} quits: it has killed the ranks. */
    private volatile boolean quitting;

    /**
     * @param created whether this launch made {@code runDir} (a new run): a run that fails before its first checkpoint
     *     then leaves no folder, as with one rank
     */
    RankLauncher(Path runDir, int ranks, ResolvedSpec spec, Integer logEvery, boolean created, Duration stopGrace,
            PrintStream out, PrintStream err) {
        this.runDir = runDir;
        this.ranks = ranks;
        this.spec = spec;
        this.logEvery = logEvery;
        this.created = created;
        this.out = out;
        this.err = err;
        this.processes = new Process[ranks];
        this.stoppedHere = new boolean[ranks];
        this.stopGrace = stopGrace;
        String launch = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
        this.rendezvous = runDir.resolve(".rendezvous-" + launch);
        this.stopFile = runDir.resolve(".stop-" + launch);
    }

    /**
     * Handles Ctrl-C and SIGTERM from here on (call it before the run folder is prepared): before the ranks start, a
     * signal quits at once and removes a new run's folder; once they run, the first asks every rank to stop after the
     * same step (rank 0 commits a checkpoint there) through a stop file they look for, then waits up to
     * {@code stopGrace} for them and kills them after it; a second kills them at once.
     */
    GracefulStop installStop() {
        stop = GracefulStop.install(err, "slope train", " all " + ranks + " ranks", new GracefulStop.Actions() {
            @Override
            public void requested() {
                try {
                    DurableFiles.writeAtomically(stopFile, new byte[0]);
                } catch (IOException e) {
                    err.println("slope train: could not write " + stopFile + " (" + e.getMessage() + "); stopping "
                            + "the ranks at once");
                    killAll();
                    return;
                }
                Thread.ofPlatform().daemon().name("slope-stop-grace").start(() -> {
                    long deadline = System.nanoTime() + stopGrace.toNanos();
                    try {
                        for (Process p : processes) {
                            if (p != null && !p.waitFor(deadline - System.nanoTime(), TimeUnit.NANOSECONDS)) {
                                stop.say("the ranks did not stop within " + stopGrace.toSeconds() + " s; killing them");
                                killAll();
                                return;
                            }
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
            }

            @Override
            public String quit(int exitCode) {
                quitting = true;
                killAll();
                return (processes[0] != null ? "Killed all " + ranks + " ranks. " : "")
                        + TrainCommand.resumeHint(runDir, created, ranks);
            }

            @Override
            public void cleanUp() {
                String failure = GracefulStop.deleteIfUnstarted(runDir, created);
                if (failure != null) {
                    err.println("slope train: " + failure);
                }
            }
        });
        return stop;
    }

    /** Runs the ranks to the end; 0 when every rank succeeded (rank 0 printed the summary). */
    int run() throws IOException, InterruptedException {
        if (stop == null) {
            installStop();
        }
        Thread hook = new Thread(this::stopOnExit, "slope-train-stop-ranks");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            String others = ranks == 2 ? "rank 1 logs to " + log(1)
                    : "ranks 1-" + (ranks - 1) + " log to " + runDir.resolve("rank-<r>.log");
            out.println("launching " + ranks + " ranks (" + spec.backend().wireName() + " backend); " + others);
            LinkedBlockingQueue<Integer> exits = new LinkedBlockingQueue<>();
            try {
                synchronized (this) {
                    for (int r = 0; r < ranks; r++) {
                        processes[r] = start(r);
                        int rank = r;
                        processes[r].onExit().thenRun(() -> exits.add(rank));
                    }
                }
            } catch (IOException | RuntimeException e) {
                stopAll();
                throw e;
            }
            stop.trainingBegins(); // from here a first signal is forwarded to the ranks; a stop file they find at start
            List<Integer> failedOnTheirOwn = new ArrayList<>();
            boolean rankStopped = false;
            for (int left = ranks; left > 0; left--) {
                int r = exits.take();
                int status = processes[r].exitValue();
                if (status == 128 + GracefulStop.SIGINT && !stop.requested()) {
                    Thread.sleep(500); // a rank quit on a Ctrl-C that reaches this launcher too: let it be handled
                }
                rankStopped |= status == RankCommand.STOPPED;
                if (status != 0 && status != RankCommand.STOPPED && !stop.requested() && !stoppedHere[r]) {
                    failedOnTheirOwn.add(r);
                    if (failedOnTheirOwn.size() == 1) {
                        stopAll();
                    }
                }
            }
            stop.trainingEnded(0, 0); // every rank has exited: a signal from here on quits at once
            for (Thread pump : pumps) {
                pump.join();
            }
            if (quitting) {
                GracefulStop.awaitHalt(); // the handler that quits says why and halts with its own status
            }
            if (stop.requested() || (rankStopped && failedOnTheirOwn.isEmpty())) {
                return stopped();
            }
            if (failedOnTheirOwn.isEmpty()) {
                return 0;
            }
            reportFailure(failedOnTheirOwn);
            return 1;
        } finally {
            Files.deleteIfExists(rendezvous);
            Files.deleteIfExists(stopFile);
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // The hook is running or has run: it stops the ranks.
            }
        }
    }

    /**
     * The ranks stopped on a request (this launcher's signal, or one a rank got itself): where, and how to go on.
     * Every rank that stopped at the agreed step exits {@link RankCommand#STOPPED}; one that quit before training (or
     * was killed after the grace period) did not, and the run goes on from its last committed checkpoint.
     */
    private int stopped() throws IOException {
        boolean clean = true;
        for (int r = 0; r < ranks; r++) {
            clean &= !stoppedHere[r] && processes[r].exitValue() == RankCommand.STOPPED;
        }
        List<Long> committed = new LocalCheckpointStore(runDir).committedSteps();
        if (clean && !committed.isEmpty()) {
            stop.say(TrainCommand.stoppedMessage(committed.getLast(), spec.training().steps(), runDir, ranks));
        } else {
            stop.say("stopped all " + ranks + " ranks. " + removeIfUnstarted());
        }
        return stop.requested() ? stop.exitCode() : 128 + GracefulStop.SIGINT;
    }

    /** The resume hint; a new run's folder is removed when no checkpoint was committed in it. */
    private String removeIfUnstarted() {
        String hint = TrainCommand.resumeHint(runDir, created, ranks);
        String failure = GracefulStop.deleteIfUnstarted(runDir, created);
        return failure == null ? hint : hint + " (" + failure + ")";
    }

    private Process start(int rank) throws IOException {
        List<String> command = new ArrayList<>(javaCommand(ranks));
        command.addAll(List.of(MAIN, "train-rank", "--run", runDir.toString(), "--rank", "" + rank, "--ranks",
                "" + ranks, "--rendezvous", rendezvous.toString(), "--stop-file", stopFile.toString()));
        if (logEvery != null) {
            command.addAll(List.of("--log-every", "" + logEvery));
        }
        var console = System.console();
        if (rank == 0 && console != null && console.isTerminal()) {
            command.add("--terminal");
        }
        ProcessBuilder builder = new ProcessBuilder(command);
        Map<String, String> env = builder.environment();
        env.put("NCCL_NVLS_ENABLE", "0"); // NVLink multicast stays off (device notes)
        if (spec.backend().mayUseGpu()) {
            env.put("CUDA_VISIBLE_DEVICES", device(System.getenv("CUDA_VISIBLE_DEVICES"), rank, ranks));
        }
        Path log = log(rank);
        Files.writeString(log, "== " + Instant.now() + ": rank " + rank + " of " + ranks + " ==\n",
                StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        if (rank != 0) {
            builder.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
            Process p = builder.start();
            p.getOutputStream().close();
            return p;
        }
        Process p = builder.start();
        p.getOutputStream().close();
        OutputStream logFile = Files.newOutputStream(log, StandardOpenOption.APPEND);
        pumps.add(pump(p.getInputStream(), out, logFile));
        pumps.add(pump(p.getErrorStream(), err, logFile));
        return p;
    }

    /**
     * The device rank {@code rank} sees as its only one: the rank-th entry of the user's CUDA_VISIBLE_DEVICES when
     * set, else {@code rank}.
     */
    static String device(String visible, int rank, int ranks) {
        if (visible == null || visible.isBlank()) {
            return "" + rank;
        }
        String[] devices = visible.split(",");
        if (devices.length < ranks) {
            throw new IllegalArgumentException("--ranks: " + ranks + " ranks need " + ranks + " GPUs, but "
                    + "CUDA_VISIBLE_DEVICES=" + visible + " names " + devices.length + "; use --ranks "
                    + devices.length + " or name more devices");
        }
        return devices[rank].strip();
    }

    /**
     * Why each of {@code ranks} CPU ranks, with 1/ranks of this JVM's heap, cannot hold the run's training state
     * (naming the field, as one rank would, and the flag); null when they can or the backend is not the CPU's.
     */
    static String cpuHeapError(ResolvedSpec spec, Path runDir, int ranks) throws IOException {
        if (spec.backend() != BackendChoice.CPU) {
            return null;
        }
        int vocab;
        try (Dataset dataset = Dataset.open(runDir.resolve(LocalTrainingRun.DATASET_DIR))) {
            vocab = dataset.tokenizer().vocabSize();
        }
        return RunSpecs.validateForCpu(spec, vocab, heapPerRank(ranks) << 20)
                .map(e -> "--ranks: each of " + ranks + " ranks gets 1/" + ranks + " of the heap (" + heapPerRank(ranks)
                        + " MiB); " + e + "; or use fewer --ranks")
                .orElse(null);
    }

    /** MiB of heap for each rank: this JVM's, shared (the CPU backend keeps the whole training state there). */
    static long heapPerRank(int ranks) {
        return Math.max(256, Runtime.getRuntime().maxMemory() / ranks >> 20);
    }

    /**
     * This Java, its JVM flags (as it was started: --enable-native-access, -D…, -XX…, but neither a debugger agent
     * nor its heap size) and class path; each rank gets 1/ranks of this JVM's heap.
     */
    static List<String> javaCommand(int ranks) {
        ProcessHandle.Info info = ProcessHandle.current().info();
        List<String> command = new ArrayList<>();
        command.add(info.command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.add("-Xmx" + heapPerRank(ranks) + "m");
        List<String> flags = jvmFlags(info.arguments().map(List::of).orElse(List.of()));
        command.addAll(flags);
        if (flags.stream().noneMatch(f -> f.startsWith("--enable-native-access"))) {
            command.add("--enable-native-access=ALL-UNNAMED"); // the CUDA backend's java.lang.foreign calls
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path")));
        return command;
    }

    /** The JVM's own options among {@code arguments} (everything before the main class or -jar). */
    static List<String> jvmFlags(List<String> arguments) {
        List<String> flags = new ArrayList<>();
        for (int i = 0; i < arguments.size(); i++) {
            String a = arguments.get(i);
            if (a.equals("-cp") || a.equals("-classpath") || a.equals("--class-path")) {
                i++;
            } else if (!a.startsWith("-") || a.equals("-jar") || a.equals("-m") || a.equals("--module")) {
                break;
            } else if (a.startsWith("-Xmx") || a.startsWith("-XX:MaxHeapSize") || a.startsWith("-XX:MaxRAMPercentage")
                    || a.startsWith("-agentlib:jdwp") || a.startsWith("-Xrunjdwp")) {
                continue;
            } else if (TAKES_VALUE.contains(a) && i + 1 < arguments.size()) {
                flags.add(a);
                flags.add(arguments.get(++i));
            } else {
                flags.add(a);
            }
        }
        return flags;
    }

    Path log(int rank) {
        return runDir.resolve("rank-" + rank + ".log");
    }

    private Thread pump(InputStream from, PrintStream to, OutputStream log) {
        return Thread.ofPlatform().name("rank-0-output").start(() -> {
            byte[] buffer = new byte[8192];
            try (from) {
                for (int n; (n = from.read(buffer)) >= 0; ) {
                    to.write(buffer, 0, n);
                    to.flush();
                    synchronized (log) {
                        log.write(buffer, 0, n);
                    }
                }
            } catch (IOException e) {
                // The rank is gone; what it wrote is passed on.
            } finally {
                synchronized (log) {
                    try {
                        log.flush();
                    } catch (IOException ignored) {
                        // Best effort: the log is a copy of what was printed.
                    }
                }
            }
        });
    }

    /** SIGTERM to every rank still running, then SIGKILL after {@link #GRACE}; returns when all have exited. */
    private synchronized void stopAll() {
        long deadline = System.nanoTime() + GRACE.toNanos();
        for (int r = 0; r < ranks; r++) {
            if (processes[r] != null && processes[r].isAlive()) {
                stoppedHere[r] = true;
                processes[r].destroy();
            }
        }
        for (Process p : processes) {
            if (p == null) {
                continue;
            }
            try {
                if (!p.waitFor(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                    p.destroyForcibly().waitFor();
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    /** SIGKILL to every rank still running, at once; returns when all have exited. */
    private synchronized void killAll() {
        for (int r = 0; r < ranks; r++) {
            if (processes[r] != null && processes[r].isAlive()) {
                stoppedHere[r] = true;
                processes[r].destroyForcibly();
            }
        }
        for (Process p : processes) {
            if (p != null) {
                p.onExit().join();
            }
        }
    }

    /**
     * This JVM exits while the ranks run, other than by {@link GracefulStop} (which kills them itself): on SIGHUP, say.
     * The ranks stop at once, and the run resumes from its last committed checkpoint.
     */
    private void stopOnExit() {
        if (quitting) {
            return;
        }
        stopAll();
        err.println("slope train: stopped all " + ranks + " ranks. " + removeIfUnstarted());
    }

    private void reportFailure(List<Integer> failed) throws IOException {
        // A rank killed by a signal is the cause; the others then lost their peer and failed on their own too.
        int culprit = failed.stream().filter(r -> processes[r].exitValue() > 128).findFirst().orElse(failed.getFirst());
        StringBuilder b = new StringBuilder("slope train: rank " + culprit + " of " + ranks + " "
                + describe(processes[culprit].exitValue()) + "; stopped the other ranks.");
        for (int r : failed) {
            if (r != culprit) {
                b.append(" Rank ").append(r).append(' ').append(describe(processes[r].exitValue())).append(" too.");
            }
        }
        b.append("\nlast lines of ").append(log(culprit)).append(":\n");
        for (String line : tail(log(culprit))) {
            b.append("  ").append(line).append('\n');
        }
        b.append(TrainCommand.resumeHint(runDir, created, ranks));
        err.println(b);
        LocalTrainingRun.deleteIfUnstarted(runDir, created);
    }

    static String describe(int exitValue) {
        if (exitValue > 128) {
            int signal = exitValue - 128;
            return "was killed by " + SIGNALS.getOrDefault(signal, "signal " + signal) + " (exit status " + exitValue
                    + ")";
        }
        return "exited with status " + exitValue;
    }

    private List<String> tail(Path log) throws IOException {
        if (!Files.exists(log)) {
            return List.of("(no log)");
        }
        List<String> lines = new String(Files.readAllBytes(log), StandardCharsets.UTF_8).lines()
                .map(l -> l.substring(l.lastIndexOf('\r') + 1)).toList();
        return lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size());
    }
}
