package io.slope.api;

import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Pause, resume and cancel of a training run through the Temporal Updates and cancellation, end to end. */
class RunControlApiTest {
    private static ApiHarness api;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        api = ServiceHarness.get();
        corpus = api.corpus();
    }

    /** Long enough to be caught training; checkpoints every 50 steps keep S3 traffic small. */
    private static String longSpec(String name) {
        return ApiHarness.tinySpec(name, corpus, 20_000).replace("\"checkpointEvery\": 5", "\"checkpointEvery\": 50");
    }

    @Test
    void aRunIsPausedResumedAndCancelled() throws Exception {
        ApiHarness.Reply submitted = api.post("/api/v1/runs", api.aliceToken, "application/json", longSpec("control"));
        assertEquals(201, submitted.status(), submitted.body());
        String id = submitted.json().get("id").asText();
        String run = "/api/v1/runs/" + id;
        JsonNode training = api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3),
                r -> "sparsePhase".equals(r.path("stage").asText()) && r.get("stepsDone").asInt() > 20);
        assertEquals("RUNNING", training.get("status").asText());
        assertTrue(training.get("tokensPerSecond").asDouble() > 0, training::toString);
        assertTrue(training.get("etaSeconds").asLong() > 0, training::toString);

        // A running run can be neither deleted nor retried.
        assertProblem(api.delete(run, api.aliceToken), 409);
        assertProblem(api.post(run + "/retry?fromStage=eval", api.aliceToken, null, null), 409);
        assertProblem(api.post(run + "/resume", api.aliceToken, null, null), 409);

        ApiHarness.Reply pause = api.post(run + "/pause", api.aliceToken, null, null);
        assertEquals(202, pause.status(), pause.body());
        JsonNode paused = api.awaitRun(id, api.aliceToken, Duration.ofMinutes(2), ApiHarness.status("PAUSED"));
        int stepAtPause = paused.get("stepsDone").asInt();
        assertTrue(paused.get("lastCheckpoint").get("step").asInt() <= stepAtPause);
        JsonNode again = assertProblem(api.post(run + "/pause", api.aliceToken, null, null), 409);
        assertTrue(again.get("detail").asText().contains("already paused"), again::toString);
        Thread.sleep(1500);
        assertEquals(stepAtPause, api.get(run, api.aliceToken).json().get("stepsDone").asInt(),
                "no training while paused");

        ApiHarness.Reply resume = api.post(run + "/resume", api.aliceToken, null, null);
        assertEquals(202, resume.status(), resume.body());
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(2),
                r -> "RUNNING".equals(r.get("status").asText()) && r.get("stepsDone").asInt() > stepAtPause);

        ApiHarness.Reply cancel = api.post(run + "/cancel", api.aliceToken, null, null);
        assertEquals(202, cancel.status(), cancel.body());
        JsonNode cancelled = api.awaitRun(id, api.aliceToken, Duration.ofMinutes(2), ApiHarness.status("CANCELLED"));
        assertTrue(cancelled.get("stepsDone").asInt() < 20_000);
        assertProblem(api.post(run + "/cancel", api.aliceToken, null, null), 409);
        assertEquals(204, api.delete(run, api.aliceToken).status());
    }
}
