package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;

/**
 * The REST API as the CLI uses it. The address and token come from the flags, else {@code SLOPE_API} and
 * {@code SLOPE_TOKEN}, else {@code ~/.slope/config} ({@code api=...}, {@code token=...}); errors are the API's
 * problem documents, printed with every field they name.
 */
public final class ApiClient {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String base;
    private final String token;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    public ApiClient(String base, String token) {
        this.base = base.replaceAll("/+$", "");
        this.token = token;
    }

    /** The API's answer when it refuses: status and problem document. */
    public static final class ApiException extends RuntimeException {
        private final int status;
        private final transient JsonNode problem;

        ApiException(int status, JsonNode problem, String fallback) {
            super(describe(status, problem, fallback));
            this.status = status;
            this.problem = problem;
        }

        public int status() {
            return status;
        }

        public JsonNode problem() {
            return problem;
        }

        private static String describe(int status, JsonNode problem, String fallback) {
            if (problem == null || !problem.has("detail")) {
                return status + ": " + fallback;
            }
            StringBuilder sb = new StringBuilder(status + " " + problem.path("title").asText() + ": "
                    + problem.get("detail").asText());
            for (JsonNode error : problem.path("errors")) {
                sb.append("\n  ").append(error.path("field").asText()).append(": ")
                        .append(error.path("message").asText());
            }
            return sb.toString();
        }
    }

    /** Resolves the address and token: flag, then environment, then {@code ~/.slope/config}. */
    public static ApiClient resolve(String apiFlag, String tokenFlag, Map<String, String> env, Path home) {
        Properties config = new Properties();
        Path file = home.resolve(".slope").resolve("config");
        if (Files.isRegularFile(file)) {
            try (var in = Files.newBufferedReader(file)) {
                config.load(in);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file, e);
            }
        }
        String api = first(apiFlag, env.get("SLOPE_API"), config.getProperty("api"));
        String token = first(tokenFlag, env.get("SLOPE_TOKEN"), config.getProperty("token"));
        if (api == null) {
            throw new IllegalArgumentException("where is the API? pass --api URL, set SLOPE_API, or put api=URL in "
                    + file);
        }
        if (token == null) {
            throw new IllegalArgumentException("no API token: pass --token, set SLOPE_TOKEN, or put token=... in "
                    + file + " (an operator makes one with `slope token create --user NAME`)");
        }
        return new ApiClient(api, token);
    }

    private static String first(String... values) {
        for (String v : values) {
            if (v != null && !v.isBlank()) {
                return v.strip();
            }
        }
        return null;
    }

    public String base() {
        return base;
    }

    public JsonNode get(String path) {
        return send(request(path).GET().build());
    }

    public JsonNode post(String path, String json) {
        HttpRequest.Builder request = request(path);
        if (json == null) {
            request.POST(HttpRequest.BodyPublishers.noBody());
        } else {
            request.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json));
        }
        return send(request.build());
    }

    /** Uploads a corpus file (streamed from disk); returns the API's answer with its {@code uri}. */
    public JsonNode uploadCorpus(Path file) {
        try {
            return send(request("/api/v1/datasets?filename=" + URLEncoder.encode(file.getFileName().toString(),
                    StandardCharsets.UTF_8)).header("Content-Type", "application/octet-stream")
                    .POST(HttpRequest.BodyPublishers.ofFile(file)).build());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    /** Downloads a presigned URL (no token: the signature is the permission) to a file. */
    public void download(String url, Path to) {
        try {
            HttpResponse<Path> response = http.send(HttpRequest.newBuilder(URI.create(url)).GET().build(),
                    HttpResponse.BodyHandlers.ofFile(to));
            if (response.statusCode() != 200) {
                throw new ApiException(response.statusCode(), null, "download of " + to.getFileName() + " failed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("download to " + to, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofMinutes(10))
                .header("Authorization", "Bearer " + token).header("Accept", "application/json");
    }

    private JsonNode send(HttpRequest request) {
        HttpResponse<String> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot reach the API at " + base + " (" + (e.getMessage() == null
                    ? e.getClass().getSimpleName() : e.getMessage()) + "); is it running? (`slope up` starts one)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        JsonNode body = null;
        if (!response.body().isEmpty()) {
            try {
                body = JSON.readTree(response.body());
            } catch (IOException e) {
                body = null;
            }
        }
        if (response.statusCode() >= 400) {
            throw new ApiException(response.statusCode(), body, response.body());
        }
        return body;
    }
}
