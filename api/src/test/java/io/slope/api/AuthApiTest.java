package io.slope.api;

import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** No token, a malformed or wrong one: 401. Another user's run: 404 on every endpoint. An admin sees all runs. */
class AuthApiTest {
    private static ApiHarness api;
    private static String aliceRun;

    @BeforeAll
    static void start() throws Exception {
        api = ApiHarness.get();
        String corpus = api.corpus();
        // A run of alice's for the checks; no worker runs it here, so it stays QUEUED.
        ApiHarness.Reply reply = api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("auth-check", corpus, 20));
        assertEquals(201, reply.status(), reply.body());
        aliceRun = reply.json().get("id").asText();
    }

    @Test
    void everyApiEndpointNeedsAToken() throws Exception {
        for (String path : List.of("/api/v1/runs", "/api/v1/runs/" + aliceRun, "/api/v1/runs/" + aliceRun + "/metrics",
                "/api/v1/runs/" + aliceRun + "/artifacts")) {
            ApiHarness.Reply reply = api.get(path, null);
            JsonNode problem = assertProblem(reply, 401);
            assertTrue(problem.get("detail").asText().contains("Bearer"), problem::toString);
            assertEquals("Bearer realm=\"slope\"", reply.header("WWW-Authenticate"));
        }
        assertProblem(api.post("/api/v1/runs", null, "application/json", "{}"), 401);
        assertProblem(api.post("/api/v1/datasets", null, "text/plain", "abc"), 401);
        assertProblem(api.delete("/api/v1/runs/" + aliceRun, null), 401);
    }

    @Test
    void wrongOrMalformedTokensAre401() throws Exception {
        JsonNode problem = assertProblem(api.get("/api/v1/runs", "slope_not-a-real-token"), 401);
        assertTrue(problem.get("detail").asText().contains("unknown or revoked"), problem::toString);
        ApiHarness.Reply basic = api.send(api.request("/api/v1/runs", null).header("Authorization", "Basic YTpi")
                .GET().build());
        assertTrue(assertProblem(basic, 401).get("detail").asText().contains("Bearer <token>"));
    }

    @Test
    void aRevokedTokenIs401() throws Exception {
        String db = api.env.get("SLOPE_DB_URL");
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.io.PrintStream stdout = System.out;
        System.setOut(new java.io.PrintStream(out, true, java.nio.charset.StandardCharsets.UTF_8));
        try {
            assertEquals(0, TokenCommand.run("create", "--db", db, "--user", "carol"));
        } finally {
            System.setOut(stdout);
        }
        String carol = out.toString(java.nio.charset.StandardCharsets.UTF_8).strip();
        assertEquals(200, api.get("/api/v1/runs", carol).status());
        assertEquals(0, TokenCommand.run("revoke", "--db", db, "--user", "carol"));
        assertTrue(assertProblem(api.get("/api/v1/runs", carol), 401).get("detail").asText().contains("revoked"));
    }

    @Test
    void anotherUsersRunIsNotFoundEverywhere() throws Exception {
        String run = "/api/v1/runs/" + aliceRun;
        assertEquals(200, api.get(run, api.aliceToken).status());
        for (ApiHarness.Reply reply : List.of(api.get(run, api.bobToken), api.get(run + "/metrics", api.bobToken),
                api.get(run + "/artifacts", api.bobToken), api.post(run + "/cancel", api.bobToken, null, null),
                api.post(run + "/pause", api.bobToken, null, null), api.post(run + "/resume", api.bobToken, null, null),
                api.post(run + "/retry?fromStage=eval", api.bobToken, null, null), api.delete(run, api.bobToken))) {
            JsonNode problem = assertProblem(reply, 404);
            assertEquals("https://slope.dev/problems/not-found", problem.get("type").asText());
        }
        for (JsonNode item : api.get("/api/v1/runs?limit=100", api.bobToken).json().get("items")) {
            assertEquals("bob", item.get("owner").asText(), "bob lists only his own runs");
        }
    }

    @Test
    void anAdminSeesEveryonesRuns() throws Exception {
        ApiHarness.Reply detail = api.get("/api/v1/runs/" + aliceRun, api.adminToken);
        assertEquals(200, detail.status());
        assertEquals("alice", detail.json().get("owner").asText());
        boolean listed = false;
        for (JsonNode item : api.get("/api/v1/runs?limit=100", api.adminToken).json().get("items")) {
            listed |= item.get("id").asText().equals(aliceRun);
        }
        assertTrue(listed, "the admin's list has alice's run");
    }
}
