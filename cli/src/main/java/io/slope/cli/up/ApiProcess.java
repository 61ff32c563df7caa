package io.slope.cli.up;

import io.slope.api.auth.ApiTokens;
import io.slope.catalogue.JdbcUrlDataSource;
import io.slope.localservices.ManagedProcess;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * The REST API of the one-machine stack, as its own JVM (its Micronaut class path stays off the CLI's): started from
 * the api module's build output with the stack's environment, local corpus paths allowed under the working directory
 * (the workers share this machine). The first start makes an admin token for this machine's user and writes the address and token to
 * {@code <home>/config}, where the CLI client looks, so {@code slope submit} works right away.
 */
public final class ApiProcess implements AutoCloseable {
    private final ManagedProcess process;
    private final String address;

    private ApiProcess(ManagedProcess process, String address) {
        this.process = process;
        this.address = address;
    }

    public static ApiProcess start(Path apiBuild, Map<String, String> stackEnv, int port, int temporalUiPort,
            Path home, Consumer<String> say) throws Exception {
        String address = "http://127.0.0.1:" + port;
        Map<String, String> env = new HashMap<>(stackEnv);
        env.put("SLOPE_API_HOST", "127.0.0.1");
        env.put("SLOPE_API_PORT", Integer.toString(port));
        env.put("SLOPE_TEMPORAL_UI_URL", "http://127.0.0.1:" + temporalUiPort);
        env.put("SLOPE_CORPUS_ALLOW_LOCAL_PATHS", "true");
        // Only files under the directory `slope up` was started in: not /proc, not other users' files.
        env.put("SLOPE_CORPUS_LOCAL_ROOTS", System.getProperty("user.dir"));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-Xmx1g", "-cp", classpath(apiBuild),
                "io.slope.api.Application"));
        ManagedProcess process = ManagedProcess.start("api", command, env, home.resolve("api.log"));
        ApiProcess api = new ApiProcess(process, address);
        try {
            api.awaitHealthy(Duration.ofMinutes(2));
            String token = ensureToken(home.resolve("config"), address, stackEnv.get("SLOPE_DB_URL"));
            say.accept("api        " + address + " (run page " + address + "/, Swagger UI " + address + "/swagger-ui;"
                    + " log " + home.resolve("api.log") + "); address and token in " + home.resolve("config")
                    + (token == null ? "" : " (new admin token for " + System.getProperty("user.name") + ")"));
        } catch (Exception | Error e) {
            api.close();
            throw e;
        }
        return api;
    }

    /** The api module's jar and libraries, as {@code mvn package} leaves them in {@code api/target}. */
    static String classpath(Path apiBuild) throws IOException {
        Path lib = apiBuild.resolve("lib");
        try (Stream<Path> jars = Files.list(apiBuild)) {
            Path jar = jars.filter(p -> p.getFileName().toString().matches("slope-api-.*\\.jar")).findFirst()
                    .orElseThrow(() -> new IllegalStateException("the api is not built (" + apiBuild + " has no "
                            + "slope-api jar): build it with `mvn -pl api -am package` (./slope does)"));
            if (!Files.isDirectory(lib)) {
                throw new IllegalStateException(lib + " is missing: build the api with `mvn -pl api -am package`");
            }
            return jar + ":" + lib + "/*";
        }
    }

    /**
     * Keeps the token in {@code config} when the API accepts it; otherwise makes an admin token and writes it there.
     *
     * @return the new token, or null when the one there was kept
     */
    static String ensureToken(Path config, String address, String jdbcUrl) throws Exception {
        Properties properties = new Properties();
        if (Files.isRegularFile(config)) {
            try (var in = Files.newBufferedReader(config)) {
                properties.load(in);
            }
        }
        String token = properties.getProperty("token");
        if (token != null && address.equals(properties.getProperty("api")) && accepted(address, token)) {
            return null;
        }
        token = new ApiTokens(new JdbcUrlDataSource(jdbcUrl)).create(System.getProperty("user.name")
                .replaceAll("[^A-Za-z0-9._@-]", "_"), true, "slope up");
        properties.setProperty("api", address);
        properties.setProperty("token", token);
        // An admin token: the owner's eyes only. Written to a file made 0600 and moved over the old one, so no
        // moment has it readable by others, whatever the umask or the old file's mode.
        Files.createDirectories(config.getParent(), PosixFilePermissions.asFileAttribute(
                PosixFilePermissions.fromString("rwx------")));
        Path written = Files.createTempFile(config.getParent(), "config", ".tmp", PosixFilePermissions
                .asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try (var out = Files.newBufferedWriter(written)) {
            properties.store(out, "slope CLI: the API's address and a token (written by slope up)");
        }
        Files.move(written, config, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return token;
    }

    private static boolean accepted(String address, String token) throws IOException, InterruptedException {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(address + "/api/v1/runs?limit=1"))
                .header("Authorization", "Bearer " + token).build(), HttpResponse.BodyHandlers.discarding())
                .statusCode() == 200;
    }

    private void awaitHealthy(Duration timeout) throws InterruptedException {
        HttpClient http = HttpClient.newHttpClient();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.alive()) {
                throw new IllegalStateException("the api exited: " + process.logTail());
            }
            try {
                if (http.send(HttpRequest.newBuilder(URI.create(address + "/health")).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    return;
                }
            } catch (IOException starting) {
                // not listening yet
            }
            Thread.sleep(250);
        }
        throw new IllegalStateException("the api did not become healthy in " + timeout + ": " + process.logTail());
    }

    public String address() {
        return address;
    }

    @Override
    public void close() {
        process.stop();
    }
}
