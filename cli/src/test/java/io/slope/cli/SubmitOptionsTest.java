package io.slope.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code slope submit --ranks/--chunk-steps/--keep-last-checkpoints} send the run's options beside the spec's fields,
 * and {@code slope status} shows them, as both show a {@code cuda} run's GPU memory estimate; against a stand-in API
 * that records what it is sent.
 */
class SubmitOptionsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String RUN = """
            {"id": "r1", "name": "opts", "status": "QUEUED", "stage": null, "stepsDone": 0, "totalSteps": 10,
             "evals": [], "options": {"ranks": 2, "chunkSteps": 7, "keepLastCheckpoints": 2},
             "gpuMemory": {"estimateBytes": 16275000000, "limitBytes": 80000000000,
                           "estimate": "~15.16 GiB (parts)"},
             "links": {"page": "/runs/r1"}}
            """;

    private HttpServer server;
    private final List<String> submitted = new ArrayList<>();
    @TempDir
    Path dir;

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/api/v1/runs", exchange -> {
            if (exchange.getRequestMethod().equals("POST")) {
                submitted.add(new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8));
                reply(exchange, 201);
            } else {
                reply(exchange, 200);
            }
        });
        server.createContext("/api/v1/datasets", exchange -> {
            // Stands in for an upload: the file's name as its id.
            String name = exchange.getRequestURI().getQuery().replace("filename=", "");
            long bytes = exchange.getRequestBody().readAllBytes().length;
            byte[] body = ("{\"uri\": \"s3://slope/corpora/" + name + "\", \"bytes\": " + bytes + "}")
                    .getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(201, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private static void reply(HttpExchange exchange, int status) throws IOException {
        byte[] body = RUN.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().add("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, body.length);
        exchange.getResponseBody().write(body);
        exchange.close();
    }

    private String api() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @Test
    void flagsGoAsTheRunsOptions() throws IOException {
        Path spec = dir.resolve("spec.json");
        Files.writeString(spec, "{\"name\": \"opts\", \"data\": {\"corpus\": [\"s3://slope/corpora/x\"]}}");
        var result = ComposeSmokeTest.cli("submit", spec.toString(), "--api", api(), "--token", "t", "--ranks", "2",
                "--chunk-steps", "7");
        assertEquals(0, result.code(), result.toString());
        assertEquals("r1", result.out().strip());
        String gpuMemory = "GPU memory estimate ~15.16 GiB (parts), of the service's 74.51 GiB per GPU";
        assertTrue(result.err().contains(gpuMemory), result.err());
        JsonNode body = JSON.readTree(submitted.getFirst());
        assertEquals("opts", body.get("name").asText(), "the spec goes as it was");
        assertEquals(2, body.at("/options/ranks").asInt(), body.toString());
        assertEquals(7, body.at("/options/chunkSteps").asInt(), body.toString());
        assertFalse(body.get("options").has("keepLastCheckpoints"), "an option not given is left to the service");

        var status = ComposeSmokeTest.cli("status", "r1", "--api", api(), "--token", "t");
        assertEquals(0, status.code(), status.toString());
        assertTrue(status.out().contains("ranks 2  chunk steps 7  keep last 2 checkpoints"), status.out());
        assertTrue(status.out().contains(gpuMemory), status.out());
    }

    /** Held-out files ({@code data.validation}) are uploaded like the corpus, relative to the spec's folder. */
    @Test
    void localHeldOutFilesAreUploadedLikeTheCorpus() throws IOException {
        Files.writeString(dir.resolve("train.txt"), "training text\n");
        Files.createDirectories(dir.resolve("held-out"));
        Files.writeString(dir.resolve("held-out/b.txt"), "held-out text\n");
        Files.writeString(dir.resolve("held-out/a.txt"), "more held-out text\n");
        Path spec = dir.resolve("spec.json");
        Files.writeString(spec, "{\"name\": \"opts\", \"data\": {\"corpus\": [\"train.txt\"], "
                + "\"validation\": [\"held-out\", \"s3://slope/corpora/kept\"]}}");

        var result = ComposeSmokeTest.cli("submit", spec.toString(), "--api", api(), "--token", "t");

        assertEquals(0, result.code(), result.toString());
        JsonNode data = JSON.readTree(submitted.getFirst()).get("data");
        assertEquals("[\"s3://slope/corpora/train.txt\"]", data.get("corpus").toString());
        assertEquals("[\"s3://slope/corpora/a.txt\",\"s3://slope/corpora/b.txt\",\"s3://slope/corpora/kept\"]",
                data.get("validation").toString());

        Files.writeString(spec, "{\"data\": {\"corpus\": [\"train.txt\"], \"validation\": [\"gone.txt\"]}}");
        var missing = ComposeSmokeTest.cli("submit", spec.toString(), "--api", api(), "--token", "t");
        assertTrue(missing.code() != 0 && missing.err().contains("data.validation: "), missing.toString());
    }

    @Test
    void withoutFlagsNoOptionsAreSent() throws IOException {
        Path spec = dir.resolve("spec.json");
        Files.writeString(spec, "{\"name\": \"opts\", \"data\": {\"corpus\": [\"s3://slope/corpora/x\"]}}");
        var result = ComposeSmokeTest.cli("submit", spec.toString(), "--api", api(), "--token", "t");
        assertEquals(0, result.code(), result.toString());
        assertFalse(JSON.readTree(submitted.getFirst()).has("options"), submitted.getFirst());
    }
}
