package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.api.auth.ApiTokens;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import javax.sql.DataSource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * schemathesis (PyPI) over the generated OpenAPI document, against the API on real servers, as two users of their
 * own (so that the other tests' runs stay out of it): bounded examples and a fixed seed. In every phase no answer may
 * be a 5xx, every 4xx must be a problem document, every documented answer must match its schema, invalid data must be
 * refused ({@code negative_data_rejection}), a request without or with a wrong token must not succeed
 * ({@code ignored_auth}), and every request about one of alice's runs, sent again with bob's token, must get what a
 * run that does not exist gets (a 404) and leave alice's run as it was ({@code slope_checks.py}). The stateful phase
 * follows the document's links from a submitted run to every operation on it.
 */
class SchemathesisTest {
    private static final String CHECKS = "not_a_server_error,client_errors_are_problem_json,"
            + "response_schema_conformance,negative_data_rejection,ignored_auth,other_users_run_is_not_found";
    /**
     * Examples per operation in the coverage and fuzzing phases, and scenarios of the stateful phase; more with
     * {@code -Dslope.schemathesis.maxExamples=N} for a longer hunt (25 missed the empty query values that 100 found).
     */
    private static final String MAX_EXAMPLES = System.getProperty("slope.schemathesis.maxExamples", "100");
    private static final String MAX_SCENARIOS = System.getProperty("slope.schemathesis.maxExamples", "50");
    private static ApiHarness api;
    private static String alice;
    private static String bob;
    private static String corpus;

    @BeforeAll
    static void users() throws Exception {
        api = ServiceHarness.get();
        ApiTokens tokens = new ApiTokens(api.server.getApplicationContext().getBean(DataSource.class));
        alice = tokens.create("schemathesis-alice", false, "tests");
        bob = tokens.create("schemathesis-bob", false, "tests");
        corpus = api.uploadCorpus(alice, ApiHarness.corpusText());
    }

    @Test
    @Timeout(value = 9, unit = TimeUnit.MINUTES)
    void generatedRequestsAboutAlicesRunFailNothingAndDoNotReachBob() throws Exception {
        // A finished run of alice's as every {id}, so that the answers about a real run are checked against their
        // schemas too (and pause, retry, delete meet a real run).
        String id = submit("schemathesis", 10);
        api.awaitRun(id, alice, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
        // DELETE meets a paused run of hers instead (a 409 for her), so that the finished one stays for the rest
        // and bob's deletes are tried on a run that is there.
        String paused = submit("schemathesis-paused", 1000);
        api.awaitRun(paused, alice, Duration.ofMinutes(3), run -> run.get("stepsDone").asInt() > 0);
        assertEquals(202, api.post("/api/v1/runs/" + paused + "/pause", alice, null, null).status());
        api.awaitRun(paused, alice, Duration.ofMinutes(1), ApiHarness.status("PAUSED"));
        Path config = Path.of("target/schemathesis.toml").toAbsolutePath();
        Files.writeString(config, "[parameters]\n\"path.id\" = \"" + id + "\"\n\n[[operations]]\n"
                + "include-name = \"DELETE /api/v1/runs/{id}\"\nparameters = { \"path.id\" = \"" + paused + "\" }\n");
        Path replays = Path.of("target/schemathesis-fuzz-replays.txt").toAbsolutePath();
        Files.deleteIfExists(replays);
        String output = schemathesis(config, "examples,coverage,fuzzing", MAX_EXAMPLES, Map.of("SLOPE_REPLAY_LOG",
                replays.toString()), "schemathesis-fuzz.txt");
        assertTrue(output.contains("Tested: 12"), "every operation of the document was exercised:\n" + output);
        Set<String> replayed = Files.readAllLines(replays).stream().map(l -> l.substring(0, l.lastIndexOf(' ')))
                .collect(Collectors.toCollection(TreeSet::new));
        Set<String> documented = Set.of("GET /api/v1/runs/{id}", "DELETE /api/v1/runs/{id}", "GET /api/v1/runs/{id}/artifacts",
                "POST /api/v1/runs/{id}/cancel", "GET /api/v1/runs/{id}/metrics", "POST /api/v1/runs/{id}/pause",
                "POST /api/v1/runs/{id}/ranks", "POST /api/v1/runs/{id}/resume", "POST /api/v1/runs/{id}/retry");
        assertTrue(replayed.containsAll(documented), "every operation on a run was sent again with bob's token: "
                + replayed);
    }

    @Test
    @Timeout(value = 9, unit = TimeUnit.MINUTES)
    void sequencesFollowingTheDocumentsLinksFailNothingAndDoNotReachBob() throws Exception {
        Path config = Path.of("target/schemathesis-stateful.toml").toAbsolutePath();
        Files.writeString(config, "[phases.stateful]\nmax-steps = 8\n");
        String spec = ApiHarness.tinySpec("schemathesis-stateful", corpus, 6);
        Path replays = Path.of("target/schemathesis-stateful-replays.txt").toAbsolutePath();
        Files.deleteIfExists(replays);
        try {
            // Positive data only: the bodies of submits are replaced by a valid spec (negative data are the other
            // phases' to try).
            String output = schemathesis(config, "stateful", MAX_SCENARIOS, Map.of("SLOPE_VALID_SPEC", spec, "SLOPE_REPLAY_LOG",
                    replays.toString()), "schemathesis-stateful.txt", "--mode", "positive");
            assertTrue(Files.exists(replays) && !Files.readAllLines(replays).isEmpty(),
                    "the runs the sequences made were tried with bob's token");
            Matcher links = Pattern.compile("Links:\\s+(\\d+) covered").matcher(output);
            assertTrue(links.find() && Integer.parseInt(links.group(1)) > 0,
                    "the stateful phase followed the document's links:\n" + output);
        } finally {
            cancelUnfinished();
        }
    }

    @AfterAll
    static void cancelWhatIsLeft() throws Exception {
        cancelUnfinished();
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void theReplayCheckReportsAReplayThatReachesAlicesRun() throws Exception {
        // With "bob" holding alice's own token, her run answers him: the check must say so, or it proves nothing.
        Path config = Path.of("target/schemathesis-canary.toml").toAbsolutePath();
        Files.writeString(config, "[parameters]\n\"path.id\" = \"" + submit("schemathesis-canary", 10) + "\"\n");
        ProcessBuilder schemathesis = command(config, "fuzzing", "other_users_run_is_not_found", "3",
                Map.of("SLOPE_BOB_TOKEN", alice), "--include-path", "/api/v1/runs/{id}", "--include-method", "GET");
        Process process = schemathesis.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(2, TimeUnit.MINUTES));
        assertEquals(1, process.exitValue(), output);
        assertTrue(output.contains("with bob's token on alice's run"), output);
    }

    /** A tiny run of alice's; its id. */
    private static String submit(String name, int steps) throws Exception {
        ApiHarness.Reply submitted = api.post("/api/v1/runs", alice, "application/json",
                ApiHarness.tinySpec(name, corpus, steps));
        assertEquals(201, submitted.status(), submitted.body());
        return submitted.json().get("id").asText();
    }

    /** Runs schemathesis as alice with bob's replays; its output, also written to target/NAME. */
    private static String schemathesis(Path config, String phases, String maxExamples, Map<String, String> env,
            String name, String... more) throws Exception {
        ProcessBuilder schemathesis = command(config, phases, CHECKS, maxExamples, env, more);
        Process process;
        try {
            process = schemathesis.start();
        } catch (java.io.IOException e) {
            throw new AssertionError("schemathesis is not installed: `python3 -m pip install schemathesis` "
                    + "(./slope test and .ci/run do it)", e);
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        System.out.println(output);
        assertTrue(process.waitFor(8, TimeUnit.MINUTES));
        Files.writeString(Path.of("target", name), output);
        assertEquals(0, process.exitValue(), output);
        return output;
    }

    private static ProcessBuilder command(Path config, String phases, String checks, String maxExamples,
            Map<String, String> env, String... more) {
        Path hooks = Path.of("src/test/schemathesis").toAbsolutePath();
        List<String> command = new ArrayList<>(List.of("schemathesis", "--config-file", config.toString(), "run",
                api.base + "/openapi/slope-1.yml", "--url", api.base, "-H", "Authorization: Bearer " + alice,
                "--checks", checks, "--phases", phases, "--max-examples", maxExamples, "--seed", "20261127",
                "--workers", "1", "--request-timeout", "30", "--generation-database", "none", "--no-color"));
        command.addAll(List.of(more));
        ProcessBuilder schemathesis = new ProcessBuilder(command).redirectErrorStream(true);
        schemathesis.environment().put("PYTHONPATH", hooks.toString());
        schemathesis.environment().put("SCHEMATHESIS_HOOKS", "slope_checks");
        schemathesis.environment().put("SLOPE_BASE", api.base);
        schemathesis.environment().put("SLOPE_ALICE_TOKEN", alice);
        schemathesis.environment().put("SLOPE_BOB_TOKEN", bob);
        schemathesis.environment().putAll(env);
        return schemathesis;
    }

    /** The runs the fuzzer started and left unfinished take no worker from the tests after this one. */
    private static void cancelUnfinished() throws Exception {
        for (String status : List.of("QUEUED", "RUNNING", "PAUSED")) {
            JsonNode page = api.get("/api/v1/runs?limit=100&status=" + status, alice).json();
            for (JsonNode run : page.get("items")) {
                api.post("/api/v1/runs/" + run.get("id").asText() + "/cancel", alice, null, null);
            }
        }
    }
}
