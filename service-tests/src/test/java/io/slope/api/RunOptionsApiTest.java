package io.slope.api;

import static io.slope.api.ProblemAssertions.assertFieldError;
import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.api.orchestration.CatalogueReconciler;
import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.spec.RunSpecCodec;
import io.slope.workflows.run.RunInput;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.client.WorkflowClient;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import javax.sql.DataSource;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Run options through the API: chosen on submit beside the spec's fields, checked against the spec, stored with the
 * run and shown by GET /runs/{id}; ranks changed on a live run; a reconcile starts a run again with its stored ones.
 * The harness has one GPU worker, so a run asked to train on two ranks is cancelled once what it was started with has
 * been read back from its workflow's history.
 */
class RunOptionsApiTest {
    private static ApiHarness api;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        api = ServiceHarness.get();
        corpus = api.corpus();
    }

    /** The harness's tiny run with two micro-batches per step, so that it may train on one or two ranks. */
    private static String spec(String name, int steps) {
        String spec = ApiHarness.tinySpec(name, corpus, steps)
                .replace("\"seed\": 11}", "\"seed\": 11, \"gradAccum\": 2}");
        assertTrue(spec.contains("\"gradAccum\": 2"), spec);
        return spec;
    }

    /** {@code spec} with {@code "options": options} beside its fields. */
    private static String withOptions(String spec, String options) {
        int end = spec.lastIndexOf('}');
        return spec.substring(0, end) + ", \"options\": " + options + "}";
    }

    @Test
    void optionsChosenOnSubmitAreStoredShownAndGivenToTheWorkflow() throws Exception {
        JsonNode submitted = submit(withOptions(spec("two-ranks", 200),
                "{\"ranks\": 2, \"chunkSteps\": 7, \"keepLastCheckpoints\": 3}"));
        String id = submitted.get("id").asText();
        assertOptions(submitted, 2, 7, 3);
        assertOptions(api.get("/api/v1/runs/" + id, api.aliceToken).json(), 2, 7, 3);
        assertEquals(List.of(2, 7, 3), storedOptions(id));
        assertTrue(api.get("/api/v1/runs/" + id, api.aliceToken).json().at("/spec").has("training"),
                "the spec is stored without the options");
        assertTrue(api.get("/api/v1/runs/" + id, api.aliceToken).json().at("/spec/options").isMissingNode());

        RunOptions started = startInput(id).options();
        assertEquals(2, started.ranks());
        assertEquals(7, started.chunkSteps());
        assertEquals(3, started.keepLastCheckpoints());
        cancel(id);
    }

    @Test
    void runsWithoutOptionsTakeTheDefaults() throws Exception {
        JsonNode submitted = submit(withOptions(spec("default-options", 10), "null"));
        String id = submitted.get("id").asText();
        assertOptions(submitted, RunOptions.DEFAULT.ranks(), RunOptions.DEFAULT.chunkSteps(),
                RunOptions.DEFAULT.keepLastCheckpoints());
        assertEquals(java.util.Arrays.asList(null, null, null), storedOptions(id));
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
    }

    @Test
    void aRetryStartsTheRunAgainWithItsStoredOptions() throws Exception {
        String id = submit(withOptions(spec("retry-options", 10),
                "{\"ranks\": 1, \"chunkSteps\": 4, \"keepLastCheckpoints\": 3}")).get("id").asText();
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
        assertEquals(4, startInput(id).options().chunkSteps());
        ApiHarness.Reply retry = api.post("/api/v1/runs/" + id + "/retry?fromStage=eval", api.aliceToken, null, null);
        assertEquals(202, retry.status(), retry.body());
        RunInput input = startInput(id);
        assertEquals("eval", input.fromStage().wireName(), "the retry's own workflow run");
        assertEquals(new RunOptions(4, RunOptions.DEFAULT.chunkMinutes(), 3,
                RunOptions.DEFAULT.continueAsNewAfterChunks(), 1), input.options());
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
    }

    @Test
    void badOptionsAreRefusedNamingTheFieldAndNothingIsStored() throws Exception {
        int before = runsNamed("bad-options");
        // Three ranks cannot share two micro-batches per step: the answer names the field and the fix.
        assertRefused("{\"ranks\": 3}", "options.ranks",
                "training.gradAccum must be a multiple of ranks: use ranks 1, 2");
        assertRefused("{\"ranks\": 65}", "options.ranks", "from 1 to 64");
        assertRefused("{\"ranks\": 0}", "options.ranks", "from 1 to 64");
        assertRefused("{\"ranks\": \"two\"}", "options.ranks", "whole number");
        assertRefused("{\"chunkSteps\": 0}", "options.chunkSteps", "from 1");
        assertRefused("{\"keepLastCheckpoints\": 1.5}", "options.keepLastCheckpoints", "whole number");
        assertRefused("{\"rank\": 2}", "options.rank", "unknown option");
        assertRefused("[2]", "options", "must be an object");
        // The spec's own errors still come first, named as before.
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                withOptions(spec("bad-options", 10).replace("\"steps\": 10", "\"steps\": -1"), "{\"ranks\": 2}")),
                "training.steps", "");
        assertEquals(before, runsNamed("bad-options"), "a refused submit stores nothing");
    }

    @Test
    void ranksOfALiveRunChangeThroughTheApiAndAreStoredOnceAccepted() throws Exception {
        String id = submit(spec("set-ranks", 20_000).replace("\"checkpointEvery\": 5", "\"checkpointEvery\": 50"))
                .get("id").asText();
        String run = "/api/v1/runs/" + id;
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(3),
                r -> "sparsePhase".equals(r.path("stage").asText()) && r.get("stepsDone").asInt() > 5);
        // Paused, so that the one GPU worker is not asked for a second rank before the run is cancelled.
        assertEquals(202, api.post(run + "/pause", api.aliceToken, null, null).status());
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(2), ApiHarness.status("PAUSED"));

        ApiHarness.Reply set = api.post(run + "/ranks", api.aliceToken, "application/json", "{\"ranks\": 2}");
        assertEquals(202, set.status(), set.body());
        assertEquals(2, set.json().at("/options/ranks").asInt(), set.body());
        assertEquals(2, storedOptions(id).get(0));
        assertTrue(api.get(run, api.aliceToken).json().get("events").toString().contains("ranks set to 2"));

        assertFieldError(api.post(run + "/ranks", api.aliceToken, "application/json", "{\"ranks\": 3}"), "ranks",
                "training.gradAccum must be a multiple of ranks");
        assertFieldError(api.post(run + "/ranks", api.aliceToken, "application/json", "{\"ranks\": 99}"), "ranks",
                "must be 1 to 64");
        assertFieldError(api.post(run + "/ranks", api.aliceToken, "application/json", "{}"), "ranks", "required");
        assertFieldError(api.post(run + "/ranks", api.aliceToken, "application/json", "not json"), "ranks",
                "required");
        assertProblem(api.post(run + "/ranks", api.bobToken, "application/json", "{\"ranks\": 1}"), 404);
        assertEquals(2, storedOptions(id).get(0), "refused changes store nothing");

        cancel(id);
        assertProblem(api.post(run + "/ranks", api.aliceToken, "application/json", "{\"ranks\": 1}"), 409);
        assertEquals(2, storedOptions(id).get(0));
    }

    @Test
    void theReconcilerStartsARunAgainWithItsStoredOptions() throws Exception {
        UUID id = UUID.randomUUID();
        new RunCatalogue(new Database(api.env.get("SLOPE_DB_URL"), Duration.ofSeconds(10))).createRun(id, "alice",
                RunSpecCodec.parseResolved(spec("orphan-two-ranks", 200)), SlopeRunWorkflow.workflowId(id.toString()));
        // As the API stores a submit's options, or a setRanks its workflow accepted, before the workflow was lost.
        try (Connection c = api.server.getApplicationContext().getBean(DataSource.class).getConnection();
                PreparedStatement ps = c.prepareStatement("UPDATE runs SET ranks = 2, chunk_steps = 9 WHERE id = ?")) {
            ps.setObject(1, id);
            assertEquals(1, ps.executeUpdate());
        }
        assertOptions(api.get("/api/v1/runs/" + id, api.aliceToken).json(), 2, 9,
                RunOptions.DEFAULT.keepLastCheckpoints());
        List<UUID> restarted = api.server.getApplicationContext().getBean(CatalogueReconciler.class).reconcile();
        assertTrue(restarted.contains(id), restarted::toString);
        RunOptions started = startInput(id.toString()).options();
        assertEquals(2, started.ranks());
        assertEquals(9, started.chunkSteps());
        assertEquals(RunOptions.DEFAULT.keepLastCheckpoints(), started.keepLastCheckpoints());
        cancel(id.toString());
    }

    /** Submits as alice; the run's detail. */
    private static JsonNode submit(String body) throws Exception {
        ApiHarness.Reply submitted = api.post("/api/v1/runs", api.aliceToken, "application/json", body);
        assertEquals(201, submitted.status(), submitted.body());
        return submitted.json();
    }

    /** A submit of the tiny spec with {@code options} is a 400 naming {@code field}. */
    private static void assertRefused(String options, String field, String fragment) throws Exception {
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                withOptions(spec("bad-options", 10), options)), field, fragment);
    }

    private static void assertOptions(JsonNode run, int ranks, int chunkSteps, int keepLastCheckpoints) {
        JsonNode options = run.get("options");
        assertEquals(ranks, options.get("ranks").asInt(), run::toString);
        assertEquals(chunkSteps, options.get("chunkSteps").asInt(), run::toString);
        assertEquals(keepLastCheckpoints, options.get("keepLastCheckpoints").asInt(), run::toString);
    }

    private static void cancel(String id) throws Exception {
        ApiHarness.Reply cancel = api.post("/api/v1/runs/" + id + "/cancel", api.aliceToken, null, null);
        assertEquals(202, cancel.status(), cancel.body());
        api.awaitRun(id, api.aliceToken, Duration.ofMinutes(2), ApiHarness.status("CANCELLED"));
    }

    /** What the run's (latest) workflow was started with, from its history. */
    private static RunInput startInput(String id) {
        WorkflowClient client = api.server.getApplicationContext().getBean(WorkflowClient.class);
        HistoryEvent first = client.fetchHistory(SlopeRunWorkflow.workflowId(id)).getEvents().get(0);
        return client.getOptions().getDataConverter().fromPayloads(0,
                Optional.of(first.getWorkflowExecutionStartedEventAttributes().getInput()), RunInput.class,
                RunInput.class);
    }

    /** ranks, chunk_steps, keep_last_checkpoints as stored (null: none chosen). */
    private static List<Integer> storedOptions(String id) throws SQLException {
        try (Connection c = api.server.getApplicationContext().getBean(DataSource.class).getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT ranks, chunk_steps, keep_last_checkpoints FROM runs "
                        + "WHERE id = ?")) {
            ps.setObject(1, UUID.fromString(id));
            try (ResultSet rs = ps.executeQuery()) {
                assertTrue(rs.next(), "run " + id + " is stored");
                return java.util.Arrays.asList(rs.getObject(1, Integer.class), rs.getObject(2, Integer.class),
                        rs.getObject(3, Integer.class));
            }
        }
    }

    private static int runsNamed(String name) throws SQLException {
        try (Connection c = api.server.getApplicationContext().getBean(DataSource.class).getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM runs WHERE name = ?")) {
            ps.setString(1, name);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        }
    }
}
