package io.slope.api;

import static io.slope.api.ProblemAssertions.assertFieldError;
import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every documented error is problem+json naming the field: spec errors from the spec codec, parameter errors, the
 * framework's own (unknown route, wrong method, wrong media type); and the surfaces without a token (health's status,
 * OpenAPI, Swagger UI, the run page and their assets) and what they do not show.
 */
class RequestErrorsApiTest {
    private static ApiHarness api;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        api = ApiHarness.get();
        corpus = api.corpus();
    }

    @Test
    void specErrorsComeFromTheSpecCodecAndNameTheField() throws Exception {
        assertFieldError(post(ApiHarness.tinySpec("x", corpus, 10).replace("\"steps\": 10", "\"steps\": \"ten\"")),
                "training.steps", "expected an integer, got the string \"ten\"");
        assertFieldError(post(ApiHarness.tinySpec("x", corpus, 10).replace("\"batchSize\"", "\"batchsize\"")),
                "training.batchsize", "unknown field; allowed here: ");
        assertFieldError(post(ApiHarness.tinySpec("x", corpus, 10).replace("\"steps\": 10", "\"steps\": 0")),
                "training.steps", "");
        assertFieldError(post("{\"name\": "), "$", "not valid JSON");
        assertFieldError(post("[1, 2]"), "$", "expected a JSON object");
        assertFieldError(post(""), "$", "run spec");
        JsonNode problem = assertProblem(post("{\"nmae\": 1}"), 400);
        assertEquals("https://slope.dev/problems/invalid-spec", problem.get("type").asText());
    }

    @Test
    void parameterErrorsNameTheParameter() throws Exception {
        assertFieldError(api.get("/api/v1/runs?limit=0", api.aliceToken), "limit", "");
        assertFieldError(api.get("/api/v1/runs?limit=101", api.aliceToken), "limit", "");
        assertFieldError(api.get("/api/v1/runs?cursor=garbage", api.aliceToken), "cursor", "nextCursor");
        // Well-formed but forged: an instant Java cannot make, one Postgres cannot store, nanoseconds out of range.
        for (String forged : new String[] {Long.MAX_VALUE + ":999999999:" + UUID.randomUUID(),
                "99999999999999:0:" + UUID.randomUUID(), "1:-5:" + UUID.randomUUID()}) {
            String cursor = java.util.Base64.getUrlEncoder().withoutPadding()
                    .encodeToString(forged.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            assertFieldError(api.get("/api/v1/runs?cursor=" + cursor, api.aliceToken), "cursor", "nextCursor");
        }
        assertProblem(api.get("/api/v1/runs?status=SLEEPING", api.aliceToken), 400);
        // Empty values are not the parameter left out (schemathesis's negative_data_rejection found them answered).
        assertFieldError(api.get("/api/v1/runs?status=", api.aliceToken), "status", "empty");
        assertFieldError(api.get("/api/v1/runs?limit=", api.aliceToken), "limit", "empty");
        String run = "/api/v1/runs/" + UUID.randomUUID();
        assertFieldError(api.get(run + "/metrics?afterStep=", api.aliceToken), "afterStep", "empty");
        assertFieldError(api.get(run + "/metrics?limit=&afterStep=3", api.aliceToken), "limit", "empty");
        assertProblem(api.get("/api/v1/runs?limit=many", api.aliceToken), 400);
        assertProblem(api.get("/api/v1/runs/not-a-uuid", api.aliceToken), 400);
        assertFieldError(api.get("/api/v1/runs/" + UUID.randomUUID() + "/metrics?afterStep=-1", api.aliceToken),
                "afterStep", "");
        JsonNode missing = assertProblem(api.get("/api/v1/runs/" + UUID.randomUUID(), api.aliceToken), 404);
        assertTrue(missing.get("detail").asText().contains("does not exist"), missing::toString);
    }

    @Test
    void theFrameworksOwnErrorsAreProblemsToo() throws Exception {
        assertProblem(api.get("/api/v1/nothing-here", api.aliceToken), 404);
        assertProblem(api.delete("/api/v1/runs", api.aliceToken), 405);
        assertProblem(api.post("/api/v1/runs", api.aliceToken, "text/plain", "{}"), 415);
        assertProblem(api.get("/no-such-page", null), 404);
    }

    @Test
    void anonymousHealthIsTheStatusOnlyAndPrometheusNeedsAToken() throws Exception {
        // The details name the datasource URL, which in compose carries the database password.
        ApiHarness.Reply anonymous = api.get("/health", null);
        assertEquals(200, anonymous.status(), anonymous.body());
        assertEquals("UP", anonymous.json().get("status").asText());
        assertFalse(anonymous.json().has("details"), anonymous::body);
        ApiHarness.Reply health = api.get("/health", api.aliceToken);
        assertEquals("UP", health.json().at("/details/temporal/status").asText(), health::body);
        assertEquals("UP", health.json().at("/details/jdbc/status").asText(), health::body);
        assertFalse(api.get("/health", "not-a-token").json().has("details"));

        assertProblem(api.get("/prometheus", null), 401);
        assertProblem(api.get("/prometheus", "not-a-token"), 401);
        ApiHarness.Reply prometheus = api.get("/prometheus", api.aliceToken);
        assertEquals(200, prometheus.status());
        assertTrue(prometheus.body().contains("http_server_requests_seconds"), "request metrics are exported");
    }

    @Test
    void theRunPageForbidsFramingInlineScriptAndReferrers() throws Exception {
        for (String page : new String[] {"/", "/runs/" + UUID.randomUUID()}) {
            ApiHarness.Reply reply = api.get(page, null);
            String policy = reply.header("Content-Security-Policy");
            assertTrue(policy != null && policy.contains("default-src 'self'") && policy.contains("frame-ancestors "
                    + "'none'") && !policy.contains("unsafe-inline"), page + ": " + policy);
            assertEquals("DENY", reply.header("X-Frame-Options"), page);
            assertEquals("no-referrer", reply.header("Referrer-Policy"), page);
            assertEquals("nosniff", reply.header("X-Content-Type-Options"), page);
        }
    }

    @Test
    void openApiAndPagesNeedNoToken() throws Exception {
        ApiHarness.Reply openapi = api.get("/openapi/slope-1.yml", null);
        assertEquals(200, openapi.status());
        assertTrue(openapi.body().contains("/api/v1/runs/{id}/retry"), "the generated document lists the API");
        ApiHarness.Reply swagger = api.get("/swagger-ui", null);
        assertEquals(200, swagger.status(), swagger::body);
        assertTrue(swagger.body().contains("/webjars/swagger-ui/"));
        java.util.regex.Matcher script = java.util.regex.Pattern.compile("src=\"(/webjars/swagger-ui/[^\"]+)\"")
                .matcher(swagger.body());
        assertTrue(script.find(), swagger::body);
        String bundle = script.group(1);
        assertEquals(200, api.get(bundle, null).status(), "Swagger UI's script is served by the API: " + bundle);
        for (String page : new String[] {"/", "/runs/" + UUID.randomUUID()}) {
            ApiHarness.Reply reply = api.get(page, null);
            assertEquals(200, reply.status());
            assertTrue(reply.body().contains("/assets/slope.js"));
        }
        for (String asset : new String[] {"/assets/slope.js", "/assets/charts.js", "/assets/slope.css"}) {
            assertEquals(200, api.get(asset, null).status(), asset);
        }
    }

    private static ApiHarness.Reply post(String body) throws Exception {
        return api.post("/api/v1/runs", api.aliceToken, "application/json", body);
    }
}
