package io.slope.localservices;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A real PostgreSQL server on 127.0.0.1 from the machine's server binaries (Debian: {@code apt-get install
 * postgresql}). PostgreSQL refuses to run as root, so when this JVM is root the server runs as {@code nobody}
 * through {@code setpriv}, with its data folder owned by that user. Trust authentication, loopback only; durability
 * settings are relaxed (fsync off): a test server survives a process crash, not a power cut.
 */
public final class PostgresServer {
    public static final String USER = "slope";

    private final Path bin;
    private final Path data;
    private final Path log;
    private final int port;
    private final boolean asNobody;

    private PostgresServer(Path bin, Path root, int port) {
        this.bin = bin;
        this.data = root.resolve("data");
        this.log = root.resolve("postgres.log");
        this.port = port;
        this.asNobody = isRoot();
    }

    /** Starts the cluster under {@code root}, initialising it first when the folder holds none yet. */
    public static PostgresServer start(Path root, int port) {
        PostgresServer server = new PostgresServer(binaries(), root, port);
        if (!Files.exists(server.data.resolve("PG_VERSION"))) {
            server.init();
        }
        server.start();
        return server;
    }

    /**
     * Where to keep a cluster meant for {@code preferred}: there, unless the server runs as {@code nobody} (this JVM is
     * root) and nobody cannot pass through one of its parents, as under root's home (mode 700): then
     * /var/lib/slope/postgres-HASH, one per preferred folder.
     */
    public static Path clusterFolder(Path preferred) {
        Path folder = preferred.toAbsolutePath().normalize();
        if (!isRoot() || reachableByNobody(folder)) {
            return folder;
        }
        return Path.of("/var/lib/slope", "postgres-" + Integer.toHexString(folder.toString().hashCode()));
    }

    private static boolean reachableByNobody(Path folder) {
        Path existing = folder;
        while (!Files.exists(existing)) {
            existing = existing.getParent();
        }
        try {
            ManagedProcess.run("test -x", List.of("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                    "--", "test", "-x", existing.toString()), Map.of());
            return true;
        } catch (IllegalStateException e) {
            return false;
        }
    }

    /** The folder with {@code postgres}, {@code initdb} and {@code pg_ctl}: $SLOPE_PG_BIN, else the newest Debian one. */
    public static Path binaries() {
        String configured = System.getenv("SLOPE_PG_BIN");
        if (configured != null && !configured.isBlank()) {
            return Path.of(configured);
        }
        Path debian = Path.of("/usr/lib/postgresql");
        if (Files.isDirectory(debian)) {
            try (Stream<Path> versions = Files.list(debian)) {
                var found = versions.map(v -> v.resolve("bin")).filter(b -> Files.isExecutable(b.resolve("postgres")))
                        .max(Comparator.comparingInt(b -> Integer.parseInt(b.getParent().getFileName().toString()
                                .replaceAll("\\D", "0"))));
                if (found.isPresent()) {
                    return found.get();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        throw new IllegalStateException("PostgreSQL server binaries not found (looked at $SLOPE_PG_BIN and "
                + "/usr/lib/postgresql/*/bin): install them with `apt-get install postgresql` (./slope test does)");
    }

    private void init() {
        try {
            Files.createDirectories(data);
            if (!Files.exists(log)) {
                Files.createFile(log);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (asNobody) {
            ManagedProcess.run("chown", List.of("chown", "-R", "nobody:", data.getParent().toString()), Map.of());
            ManagedProcess.run("chmod", List.of("chmod", "755", data.getParent().toString()), Map.of());
        }
        ManagedProcess.run("initdb", command(bin.resolve("initdb").toString(), "-D", data.toString(), "-U", USER,
                "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"), env());
    }

    public void start() {
        // TCP on loopback only, no Unix socket: a socket's path is limited to 107 bytes, which a deep checkout's
        // test folders exceed, and every client here connects over TCP.
        String options = "-p " + port + " -h 127.0.0.1 -k '' -c fsync=off -c synchronous_commit=off"
                + " -c full_page_writes=off -c max_connections=200";
        ManagedProcess.run("pg_ctl start", command(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-l",
                log.toString(), "-o", options, "-w", "-t", "60", "start"), env());
    }

    /** Stops cleanly (fast mode: open sessions are ended). */
    public void stop() {
        pgCtlStop("fast");
    }

    /** Stops without a shutdown checkpoint, as a crash would; the next start recovers from the WAL. */
    public void crash() {
        pgCtlStop("immediate");
    }

    private void pgCtlStop(String mode) {
        ManagedProcess.run("pg_ctl stop", command(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-m",
                mode, "-w", "-t", "60", "stop"), env());
    }

    public int port() {
        return port;
    }

    public String jdbcUrl(String database) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/" + database + "?user=" + USER;
    }

    /** Creates a database unless it exists, and returns its JDBC URL. */
    public String ensureDatabase(String name) {
        String exists = ManagedProcess.run("psql", List.of(bin.resolve("psql").toString(), "-h", "127.0.0.1", "-p",
                Integer.toString(port), "-U", USER, "-d", "postgres", "-tAc",
                "SELECT 1 FROM pg_database WHERE datname = '" + name + "'"), Map.of()).strip();
        return exists.equals("1") ? jdbcUrl(name) : createDatabase(name);
    }

    /** Creates a database and returns its JDBC URL. */
    public String createDatabase(String name) {
        if (!name.matches("[a-z][a-z0-9_]{0,62}")) {
            throw new IllegalArgumentException("database name must be lower-case letters, digits and _: " + name);
        }
        ManagedProcess.run("createdb " + name, List.of(bin.resolve("createdb").toString(), "-h", "127.0.0.1", "-p",
                Integer.toString(port), "-U", USER, name), Map.of());
        return jdbcUrl(name);
    }

    private List<String> command(String... args) {
        List<String> command = new ArrayList<>();
        if (asNobody) {
            command.addAll(List.of("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"));
        }
        command.addAll(List.of(args));
        return command;
    }

    private Map<String, String> env() {
        return Map.of("HOME", data.getParent().toString(), "LC_ALL", "C");
    }

    private static boolean isRoot() {
        try {
            return ManagedProcess.run("id", List.of("id", "-u"), Map.of()).strip().equals("0");
        } catch (RuntimeException e) {
            return false;
        }
    }
}
