package io.slope.api;

import static io.slope.api.ProblemAssertions.assertFieldError;
import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import io.slope.workflows.run.SlopeRunWorkflow;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A tiny run submitted over REST runs through every stage on the real workers; then its detail, curves, artifacts
 * (downloaded through their presigned URLs and checked against their SHA-256), a retry from a later stage, and its
 * deletion with its objects.
 */
class RunLifecycleApiTest {
    private static final int STEPS = 30;
    private static ApiHarness api;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        api = ServiceHarness.get();
        corpus = api.corpus();
    }

    @Test
    void aRunGoesThroughEveryStageAndIsRetriedAndDeleted() throws Exception {
        ApiHarness.Reply submitted = api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("lifecycle", corpus, STEPS));
        assertEquals(201, submitted.status(), submitted.body());
        String id = submitted.json().get("id").asText();
        assertEquals("/api/v1/runs/" + id, submitted.header("Location"));
        assertEquals("QUEUED", submitted.json().get("status").asText());
        assertEquals(SlopeRunWorkflow.workflowId(id), submitted.json().get("workflowId").asText());
        assertEquals("http://127.0.0.1:" + api.temporalUiPort + "/namespaces/default/workflows/run-" + id,
                submitted.json().get("temporalUiUrl").asText());
        assertEquals(STEPS, submitted.json().at("/spec/training/steps").asInt(), "the resolved spec is stored");
        assertEquals("alice", api.fairnessKey(id), "the run waits in its owner's share of the GPU queue");

        JsonNode done = api.awaitRun(id, api.aliceToken, Duration.ofMinutes(5), ApiHarness.status("SUCCEEDED"));
        assertEquals(STEPS, done.get("stepsDone").asInt());
        assertEquals(STEPS, done.at("/lastCheckpoint/step").asInt());
        assertTrue(done.at("/lastCheckpoint/key").asText().startsWith("runs/" + id + "/checkpoints/"));
        for (JsonNode stage : done.get("stages")) {
            assertEquals("done", stage.get("state").asText(), stage::toString);
        }
        Set<String> evalNames = new HashSet<>();
        done.get("evals").forEach(e -> evalNames.add(e.get("name").asText()));
        assertTrue(evalNames.size() >= 4, () -> "the final evaluations: " + evalNames);
        assertFalse(done.get("checkpoints").isEmpty());
        assertTrue(done.get("events").size() > 3, "stage transitions are events");
        assertFalse(done.hasNonNull("error"), "no error");

        JsonNode metrics = api.get("/api/v1/runs/" + id + "/metrics", api.aliceToken).json();
        assertEquals(STEPS, metrics.get("samples").size(), "one sample per optimizer step");
        JsonNode first = metrics.get("samples").get(0);
        assertEquals(1, first.get("step").asInt());
        assertTrue(first.get("loss").asDouble() > 0 && first.get("lr").asDouble() > 0, first::toString);
        JsonNode tail = api.get("/api/v1/runs/" + id + "/metrics?afterStep=25&limit=2", api.aliceToken).json();
        assertEquals(2, tail.get("samples").size());
        assertEquals(26, tail.get("samples").get(0).get("step").asInt());

        JsonNode artifacts = api.get("/api/v1/runs/" + id + "/artifacts", api.aliceToken).json();
        boolean sawWeights = false;
        for (JsonNode artifact : artifacts.get("items")) {
            byte[] bytes = api.download(artifact.get("url").asText());
            assertEquals(artifact.get("bytes").asLong(), bytes.length, artifact::toString);
            assertEquals(artifact.get("sha256").asText(), sha256(bytes), artifact::toString);
            sawWeights |= artifact.get("path").asText().equals("hf/model.safetensors");
        }
        assertTrue(sawWeights, () -> "hf/model.safetensors among " + artifacts);

        // A finished run cannot be cancelled, paused or resumed.
        assertProblem(api.post("/api/v1/runs/" + id + "/cancel", api.aliceToken, null, null), 409);
        assertProblem(api.post("/api/v1/runs/" + id + "/pause", api.aliceToken, null, null), 409);
        assertProblem(api.post("/api/v1/runs/" + id + "/resume", api.aliceToken, null, null), 409);
        assertFieldError(api.post("/api/v1/runs/" + id + "/retry?fromStage=polish", api.aliceToken, null, null),
                "fromStage", "sparsePhase");
        assertFieldError(api.post("/api/v1/runs/" + id + "/retry", api.aliceToken, null, null), "fromStage",
                "required");

        // Retry from eval: data preparation and training are not run again, eval/export/finalize are.
        ApiHarness.Reply retried = api.post("/api/v1/runs/" + id + "/retry?fromStage=eval", api.aliceToken, null,
                null);
        assertEquals(202, retried.status(), retried.body());
        assertEquals("QUEUED", retried.json().get("status").asText());
        JsonNode again = api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
        boolean retryEvent = false;
        for (JsonNode event : again.get("events")) {
            retryEvent |= event.get("message").asText().contains("retry from stage eval");
        }
        assertTrue(retryEvent, again::toString);
        assertEquals("alice", api.fairnessKey(id), "a retry stays in its owner's share of the GPU queue");
        assertEquals(STEPS, api.get("/api/v1/runs/" + id + "/metrics", api.aliceToken).json().get("samples").size(),
                "training was not repeated");

        // Delete: objects first, then the rows.
        ObjectStore objects = new ObjectStore(new S3Config(api.env.get("SLOPE_S3_ENDPOINT"),
                api.env.get("SLOPE_S3_ACCESS_KEY"), api.env.get("SLOPE_S3_SECRET_KEY"), "slope", null));
        assertFalse(objects.list("runs/" + id + "/").isEmpty());
        ApiHarness.Reply deleted = api.delete("/api/v1/runs/" + id, api.aliceToken);
        assertEquals(204, deleted.status(), deleted.body());
        assertTrue(objects.list("runs/" + id + "/").isEmpty(), "the run's objects are gone");
        assertProblem(api.get("/api/v1/runs/" + id, api.aliceToken), 404);
        assertProblem(api.delete("/api/v1/runs/" + id, api.aliceToken), 404);
    }

    @Test
    void listsPageNewestFirstAndFilterByStatus() throws Exception {
        String[] ids = new String[3];
        for (int i = 0; i < 3; i++) {
            ApiHarness.Reply reply = api.post("/api/v1/runs", api.bobToken, "application/json",
                    ApiHarness.tinySpec("page-" + i, corpus, 10));
            assertEquals(201, reply.status(), reply.body());
            ids[i] = reply.json().get("id").asText();
        }
        JsonNode page1 = api.get("/api/v1/runs?limit=2", api.bobToken).json();
        assertEquals(2, page1.get("items").size());
        assertEquals(ids[2], page1.get("items").get(0).get("id").asText(), "newest first");
        assertEquals(ids[1], page1.get("items").get(1).get("id").asText());
        String cursor = page1.get("nextCursor").asText();
        JsonNode page2 = api.get("/api/v1/runs?limit=2&cursor=" + cursor, api.bobToken).json();
        assertEquals(ids[0], page2.get("items").get(0).get("id").asText());

        for (String id : ids) {
            api.awaitRun(id, api.bobToken, Duration.ofMinutes(5), ApiHarness.status("SUCCEEDED"));
        }
        JsonNode succeeded = api.get("/api/v1/runs?status=SUCCEEDED&limit=100", api.bobToken).json();
        Set<String> listed = new HashSet<>();
        succeeded.get("items").forEach(item -> {
            assertEquals("SUCCEEDED", item.get("status").asText());
            listed.add(item.get("id").asText());
        });
        assertTrue(listed.containsAll(Set.of(ids)), listed::toString);
        assertEquals(0, api.get("/api/v1/runs?status=PAUSED", api.bobToken).json().get("items").size());
        JsonNode last = api.get("/api/v1/runs?limit=100", api.bobToken).json();
        assertNotNull(last.get("items"));
        assertFalse(last.has("nextCursor"), "the last page has no cursor");
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }
}
