package io.slope.api;

import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micronaut.http.server.HttpServerConfiguration;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Request bodies per route: JSON routes take small ones (a 413 naming SLOPE_API_MAX_JSON_BYTES), only the corpus
 * upload streams large ones, and one user has at most SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS (2) uploads in flight.
 */
class RequestLimitsApiTest {
    private static ApiHarness api;

    @BeforeAll
    static void start() throws Exception {
        api = ApiHarness.get();
    }

    private static void assertLimit(JsonNode problem, String name, long configured) {
        JsonNode limit = problem.path("limit");
        assertEquals(name, limit.path("name").asText(), problem::toString);
        assertEquals(configured, limit.path("configured").asLong(), problem::toString);
        assertTrue(problem.get("detail").asText().contains(name), problem::toString);
    }

    @Test
    void aJsonBodyOverItsLimitIs413NamingItWhileAnUploadThatSizeStreams() throws Exception {
        String big = "{\"name\": \"big\", \"pad\": \"" + "x".repeat((int) ApiHarness.MAX_JSON_BYTES) + "\"}";
        // Many times: a server that closed the connection with the body unread lost the answer one time in eight.
        for (int i = 0; i < 40; i++) {
            JsonNode problem = assertProblem(api.post("/api/v1/runs", api.aliceToken, "application/json", big), 413);
            assertLimit(problem, "SLOPE_API_MAX_JSON_BYTES", ApiHarness.MAX_JSON_BYTES);
            assertEquals(big.length(), problem.path("limit").path("usage").asLong(), problem::toString);
        }
        assertProblem(api.post("/api/v1/runs/" + UUID.randomUUID() + "/ranks", api.aliceToken, "application/json",
                big), 413);

        String corpus = UUID.randomUUID() + "\n" + "y".repeat(3 * (int) ApiHarness.MAX_JSON_BYTES);
        ApiHarness.Reply uploaded = api.post("/api/v1/datasets", api.aliceToken, "text/plain", corpus);
        assertEquals(201, uploaded.status(), uploaded.body());
    }

    @Test
    void anUploadOverItsLimitIs413NamingItAndNoRequestMaySendMuchMore() throws Exception {
        Path file = Files.createTempFile("too-big", ".txt");
        Files.write(file, new byte[(int) ApiHarness.MAX_CORPUS_BYTES + (2 << 20)]);
        // curl, because it reads an answer that comes before the whole body has been sent.
        Process curl = new ProcessBuilder("curl", "-s", "--max-time", "60", "-H", "Authorization: Bearer "
                + api.aliceToken, "-H", "Content-Type: text/plain", "--data-binary", "@" + file, "-w",
                "\n%{http_code}", api.base + "/api/v1/datasets").redirectErrorStream(true).start();
        String[] lines = new String(curl.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip().split("\n");
        assertEquals(0, curl.waitFor());
        assertEquals("413", lines[lines.length - 1], String.join("\n", lines));
        JsonNode problem = new ObjectMapper().readTree(lines[0]);
        assertLimit(problem, "SLOPE_CORPUS_MAX_BYTES", ApiHarness.MAX_CORPUS_BYTES);
        assertEquals(ApiHarness.MAX_CORPUS_BYTES + (1 << 20), api.server.getApplicationContext()
                .getBean(HttpServerConfiguration.class).getMaxRequestSize(), "the server's limit follows the upload's");
    }

    @Test
    void aThirdUploadInFlightIs429NamingTheLimit() throws Exception {
        // curl, because it sends what it has of a body from stdin as it comes (chunked), then waits for more.
        List<Process> held = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            Process curl = new ProcessBuilder("curl", "-s", "-o", "/dev/null", "--max-time", "60", "-X", "POST", "-T", "-", "-H",
                    "Authorization: Bearer " + api.bobToken, "-H", "Content-Type: text/plain", "-w", "%{http_code}",
                    api.base + "/api/v1/datasets").redirectErrorStream(true).start();
            held.add(curl);
            // Enough that the server streams it to the route rather than waiting for the whole of a small body.
            curl.getOutputStream().write((UUID.randomUUID() + " a slow upload\n" + "z".repeat(192 * 1024))
                    .getBytes(StandardCharsets.US_ASCII));
            curl.getOutputStream().flush();
        }
        // The two are in flight once the server has their headers; until then a third is still let in.
        ApiHarness.Reply third = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            third = api.post("/api/v1/datasets", api.bobToken, "text/plain", UUID.randomUUID() + " third\n");
            if (third.status() == 429) {
                break;
            }
            Thread.sleep(100);
        }
        JsonNode problem = assertProblem(third, 429);
        assertLimit(problem, "SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS", 2);
        assertEquals(2, problem.path("limit").path("usage").asLong(), problem::toString);

        for (Process curl : held) {
            curl.getOutputStream().close();
            assertEquals("201", new String(curl.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
        }
        assertEquals(201, api.post("/api/v1/datasets", api.bobToken, "text/plain", UUID.randomUUID() + " after\n")
                .status(), "a finished upload frees its place");
    }
}
