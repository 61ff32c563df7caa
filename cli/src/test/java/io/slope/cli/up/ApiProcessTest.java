package io.slope.cli.up;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.catalogue.Database;
import io.slope.localservices.Ports;
import io.slope.localservices.S3Server;
import io.slope.testinfra.TestServices;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/** slope up's API: started from api/target with the stack's environment; writes a working token to the config. */
class ApiProcessTest {
    @Test
    void theApiStartsAndTheCliConfigGetsAWorkingToken() throws Exception {
        Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir")));
        TestServices services = TestServices.get();
        Path home = services.scratch("api-process");
        Map<String, String> stack = Map.of("SLOPE_DB_URL", services.postgres().createDatabase("api_process"),
                "SLOPE_TEMPORAL_TARGET", services.temporal().target(), "SLOPE_S3_ENDPOINT", services.s3().endpoint(),
                "SLOPE_S3_ACCESS_KEY", S3Server.ACCESS_KEY, "SLOPE_S3_SECRET_KEY", S3Server.SECRET_KEY,
                "SLOPE_HOME", home.toString());
        List<String> said = new ArrayList<>();
        int port = Ports.free();
        try (ApiProcess api = ApiProcess.start(Path.of("..", "api", "target").toAbsolutePath().normalize(), stack,
                port, services.temporal().uiPort(), home, said::add)) {
            assertEquals("http://127.0.0.1:" + port, api.address());
            assertTrue(said.getFirst().startsWith("api        http://127.0.0.1:" + port), said::toString);
            Properties config = new Properties();
            try (var in = Files.newBufferedReader(home.resolve("config"))) {
                config.load(in);
            }
            assertEquals(api.address(), config.getProperty("api"));
            HttpResponse<String> runs = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(
                    api.address() + "/api/v1/runs")).header("Authorization", "Bearer " + config.getProperty("token"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, runs.statusCode(), runs.body());
            assertNull(ApiProcess.ensureToken(home.resolve("config"), api.address(), stack.get("SLOPE_DB_URL")),
                    "a working token is kept");
        }
    }

    @Test
    void theConfigHoldingTheAdminTokenIsReadableByItsOwnerOnly() throws Exception {
        Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir")));
        TestServices services = TestServices.get();
        Path home = services.scratch("api-config");
        String db = services.postgres().createDatabase("api_config");
        new Database(db, Duration.ZERO).migrate();
        Path config = home.resolve("config");
        // One left by an earlier slope up, world-readable, its API gone: the new token must not inherit the mode.
        Files.writeString(config, "api=http://127.0.0.1:2\ntoken=slope_old\n");
        Files.setPosixFilePermissions(config, PosixFilePermissions.fromString("rw-r--r--"));

        assertNotNull(ApiProcess.ensureToken(config, "http://127.0.0.1:1", db));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(config)));
        assertTrue(Files.readString(config).contains("token=slope_"));
    }
}
