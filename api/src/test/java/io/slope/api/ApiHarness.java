package io.slope.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import io.slope.api.auth.ApiTokens;
import io.slope.localservices.S3Server;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.client.WorkflowClient;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Predicate;
import javax.sql.DataSource;

/**
 * The API on real servers, once per test JVM: Postgres, the Temporal dev server and S3Proxy (test-infra) and the API
 * server on a free port. Requests go over HTTP like any client's. No worker polls the task queues, so a submitted run's
 * workflow is started and the run stays QUEUED; the tests whose runs must run are in module service-tests, whose
 * {@code ServiceHarness} starts the pipeline and GPU workers beside this.
 */
public final class ApiHarness {
    /** Corpus uploads above this are refused in the tests (so the 413 is cheap to provoke). */
    public static final long MAX_CORPUS_BYTES = 256 * 1024;
    /** JSON bodies above this are refused in the tests: below the upload limit, so that only uploads stream. */
    public static final long MAX_JSON_BYTES = 64 * 1024;

    private static ApiHarness instance;

    /** The servers' settings as the SLOPE_* environment a worker or the CLI reads them from. */
    public final Map<String, String> env = new HashMap<>();
    public final EmbeddedServer server;
    public final String base;
    public final String aliceToken;
    public final String bobToken;
    public final String adminToken;
    public final int temporalUiPort;
    public final String temporalTarget;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private static final ObjectMapper JSON = new ObjectMapper();

    private ApiHarness() throws Exception {
        Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir")));
        TestServices services = TestServices.get();
        Path home = services.scratch("api");
        temporalTarget = services.temporal().target();
        temporalUiPort = services.temporal().uiPort();
        env.put("SLOPE_TEMPORAL_TARGET", temporalTarget);
        env.put("SLOPE_DB_URL", services.postgres().createDatabase("api_tests"));
        env.put("SLOPE_S3_ENDPOINT", services.s3().endpoint());
        env.put("SLOPE_S3_ACCESS_KEY", S3Server.ACCESS_KEY);
        env.put("SLOPE_S3_SECRET_KEY", S3Server.SECRET_KEY);
        env.put("SLOPE_S3_BUCKET", "slope");
        env.put("SLOPE_HOME", home.toString());
        server = ApplicationContext.run(EmbeddedServer.class, Map.ofEntries(
                Map.entry("micronaut.server.port", -1),
                Map.entry("micronaut.server.host", "127.0.0.1"),
                Map.entry("datasources.default.url", env.get("SLOPE_DB_URL")),
                Map.entry("slope.temporal.target", temporalTarget),
                Map.entry("slope.temporal.ui-url", "http://127.0.0.1:" + temporalUiPort),
                Map.entry("slope.temporal.update-timeout", "5s"),
                Map.entry("slope.s3.endpoint", env.get("SLOPE_S3_ENDPOINT")),
                Map.entry("slope.s3.access-key", S3Server.ACCESS_KEY),
                Map.entry("slope.s3.secret-key", S3Server.SECRET_KEY),
                Map.entry("slope.corpus.max-bytes", MAX_CORPUS_BYTES),
                Map.entry("slope.api.max-json-bytes", MAX_JSON_BYTES),
                // Quotas are RunQuotasTest's; here they stay out of the way of the other tests and the load bench.
                Map.entry("slope.quota.max-active-runs", 100_000),
                Map.entry("slope.quota.max-active-ranks", 100_000)));
        base = "http://127.0.0.1:" + server.getPort();
        ApiTokens tokens = new ApiTokens(server.getApplicationContext().getBean(DataSource.class));
        aliceToken = tokens.create("alice", false, "tests");
        bobToken = tokens.create("bob", false, "tests");
        adminToken = tokens.create("root", true, "tests");
        Runtime.getRuntime().addShutdownHook(new Thread(server::close, "api-harness-shutdown"));
    }

    public static synchronized ApiHarness get() throws Exception {
        if (instance == null) {
            instance = new ApiHarness();
        }
        return instance;
    }

    /** A response with its body parsed when it is JSON. */
    public record Reply(int status, String contentType, String body, JsonNode json, HttpResponse<String> raw) {
        public String header(String name) {
            return raw.headers().firstValue(name).orElse(null);
        }
    }

    public Reply get(String path, String token) throws IOException, InterruptedException {
        return send(request(path, token).GET().build());
    }

    public Reply post(String path, String token, String contentType, String body)
            throws IOException, InterruptedException {
        HttpRequest.Builder request = request(path, token)
                .POST(body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        if (contentType != null) {
            request.header("Content-Type", contentType);
        }
        return send(request.build());
    }

    public Reply delete(String path, String token) throws IOException, InterruptedException {
        return send(request(path, token).DELETE().build());
    }

    public HttpRequest.Builder request(String path, String token) {
        HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(path.startsWith("http") ? path : base + path))
                .timeout(Duration.ofSeconds(60));
        if (token != null) {
            builder.header("Authorization", "Bearer " + token);
        }
        return builder;
    }

    public Reply send(HttpRequest request) throws IOException, InterruptedException {
        HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
        String type = response.headers().firstValue("Content-Type").orElse("");
        JsonNode json = null;
        if (type.contains("json") && !response.body().isEmpty()) {
            json = JSON.readTree(response.body());
        }
        return new Reply(response.statusCode(), type, response.body(), json, response);
    }

    public byte[] download(String url) throws IOException, InterruptedException {
        HttpResponse<byte[]> response = http.send(HttpRequest.newBuilder(URI.create(url)).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray());
        if (response.statusCode() != 200) {
            throw new AssertionError("GET " + url + ": " + response.statusCode());
        }
        return response.body();
    }

    private String sharedCorpus;

    /** The tests' usual corpus ({@link #corpusText}), uploaded once; its s3:// uri. */
    public synchronized String corpus() throws IOException, InterruptedException {
        if (sharedCorpus == null) {
            sharedCorpus = uploadCorpus(aliceToken, corpusText());
        }
        return sharedCorpus;
    }

    /** Uploads a text as a corpus and returns its s3:// uri. */
    public String uploadCorpus(String token, String text) throws IOException, InterruptedException {
        Reply reply = post("/api/v1/datasets?filename=corpus.txt", token, "text/plain", text);
        if (reply.status() != 201 && reply.status() != 200) {
            throw new AssertionError("upload: " + reply.status() + " " + reply.body());
        }
        return reply.json().get("uri").asText();
    }

    /** Some English text: enough characters for a char-level tiny model's windows. */
    public static String corpusText() throws IOException {
        Path shared = Path.of("..", "..", "shared", "data", "tinyshakespeare.txt");
        return Files.exists(shared) ? Files.readString(shared).substring(0, 60_000)
                : "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n".repeat(700);
    }

    /** A tiny run spec (2 layers, d=64, seqLen 32, char-level, CPU, one thread) over {@code corpusUri}. */
    public static String tinySpec(String name, String corpusUri, int steps) {
        return """
                {"name": "%s", "model": {"preset": "tiny", "layers": 2, "dModel": 64, "heads": 4, "seqLen": 32},
                 "adapters": {"start": 0.75},
                 "training": {"steps": %d, "batchSize": 4, "seed": 11},
                 "optimizer": {"lr": 0.003, "warmupSteps": 4},
                 "data": {"corpus": ["%s"], "tokenizer": "char", "valFraction": 0.1},
                 "eval": {"every": 10, "maxWindows": 8}, "checkpointEvery": 5, "backend": "cpu", "threads": 1}
                """.formatted(name, steps, corpusUri);
    }

    /** The fairness key of the run's latest workflow: whose share of the task queues it runs in (ADR 034). */
    public String fairnessKey(String runId) {
        WorkflowClient client = server.getApplicationContext().getBean(WorkflowClient.class);
        return client.getWorkflowServiceStubs().blockingStub().describeWorkflowExecution(
                DescribeWorkflowExecutionRequest.newBuilder().setNamespace(client.getOptions().getNamespace())
                        .setExecution(WorkflowExecution.newBuilder().setWorkflowId(
                                SlopeRunWorkflow.workflowId(runId)))
                        .build()).getWorkflowExecutionInfo().getPriority().getFairnessKey();
    }

    /** Polls a run's detail until {@code until} holds; returns that detail. */
    public JsonNode awaitRun(String id, String token, Duration timeout, Predicate<JsonNode> until)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        JsonNode last = null;
        while (System.nanoTime() < deadline) {
            Reply reply = get("/api/v1/runs/" + id, token);
            last = reply.json();
            if (reply.status() == 200 && until.test(last)) {
                return last;
            }
            Thread.sleep(250);
        }
        throw new AssertionError("run " + id + " did not reach the expected state in " + timeout + "; last: " + last);
    }

    public static Predicate<JsonNode> status(String status) {
        return run -> status.equals(run.get("status").asText());
    }
}
