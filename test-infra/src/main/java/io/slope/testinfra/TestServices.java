package io.slope.testinfra;

import io.slope.localservices.Ports;
import io.slope.localservices.PostgresServer;
import io.slope.localservices.S3Server;
import io.slope.localservices.TemporalDevServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * One set of real servers for the whole test JVM, on loopback ports, started on first use and stopped when the JVM
 * exits: Postgres, the Temporal dev server and S3Proxy. Their state lives in a temporary folder removed at exit
 * (kept when $SLOPE_KEEP_TEST_SERVICES is set, for a post-mortem). Tests that restart a server (fault tests) restart
 * these same ones, on the same ports and state.
 */
public final class TestServices {
    private static TestServices instance;

    private final Path root;
    private PostgresServer postgres;
    private TemporalDevServer temporal;
    private S3Server s3;

    private TestServices(Path root) {
        this.root = root;
    }

    public static synchronized TestServices get() {
        if (instance == null) {
            try {
                // World-traversable: the Postgres server runs as another user when the tests run as root.
                instance = new TestServices(Files.createTempDirectory("slope-test-services-",
                        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x"))));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            Runtime.getRuntime().addShutdownHook(new Thread(instance::shutdown, "test-services-shutdown"));
        }
        return instance;
    }

    public synchronized PostgresServer postgres() {
        if (postgres == null) {
            postgres = PostgresServer.start(root.resolve("postgres"), Ports.free());
        }
        return postgres;
    }

    /**
     * The dev server binds the two ports chosen here and others it picks itself (its HTTP API, metrics and internal
     * services), so one of ours can be taken before it binds it: each retry takes fresh ports and a fresh folder.
     */
    public synchronized TemporalDevServer temporal() {
        if (temporal == null) {
            Ports.retryWhileExitedBeforeReady(3, attempt -> {
                Path dir = root.resolve(attempt == 1 ? "temporal" : "temporal-" + attempt);
                try {
                    Files.createDirectories(dir);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                temporal = TemporalDevServer.start(dir, Ports.free(), Ports.free());
            });
        }
        return temporal;
    }

    public synchronized S3Server s3() {
        if (s3 == null) {
            s3 = S3Server.start(root.resolve("s3"), Ports.free());
        }
        return s3;
    }

    /** A folder for a test's own files under this JVM's services folder. */
    public Path scratch(String name) {
        try {
            return Files.createDirectories(root.resolve("scratch").resolve(name));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private synchronized void shutdown() {
        for (Runnable stop : new Runnable[] {
            () -> { if (temporal != null) temporal.stop(); },
            () -> { if (s3 != null) s3.stop(); },
            () -> { if (postgres != null) postgres.stop(); }}) {
            try {
                stop.run();
            } catch (RuntimeException e) {
                System.err.println("test services: " + e.getMessage());
            }
        }
        if (System.getenv("SLOPE_KEEP_TEST_SERVICES") == null) {
            try (Stream<Path> paths = Files.walk(root)) {
                paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            } catch (IOException | UncheckedIOException e) {
                System.err.println("test services: could not remove " + root + ": " + e.getMessage());
            }
        }
    }
}
