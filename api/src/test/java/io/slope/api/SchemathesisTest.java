package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * schemathesis (PyPI) over the generated OpenAPI document, against the API on real servers: bounded examples and a
 * fixed seed; no answer may be a 5xx, every 4xx must be a problem document ({@code slope_checks.py}), and every
 * documented answer must match its schema.
 */
class SchemathesisTest {
    @Test
    @Timeout(value = 9, unit = TimeUnit.MINUTES)
    void noServerErrorsAndEveryClientErrorIsAProblem() throws Exception {
        ApiHarness api = ApiHarness.get();
        // A finished run of alice's as every {id}, so that the answers about a real run are checked against their
        // schemas too (and pause, retry, delete meet a real run).
        ApiHarness.Reply submitted = api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("schemathesis", api.corpus(), 10));
        assertEquals(201, submitted.status(), submitted.body());
        String id = submitted.json().get("id").asText();
        api.awaitRun(id, api.aliceToken, java.time.Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
        Path config = Path.of("target/schemathesis.toml").toAbsolutePath();
        java.nio.file.Files.writeString(config, "[parameters]\n\"path.id\" = \"" + id + "\"\n");
        Path hooks = Path.of("src/test/schemathesis").toAbsolutePath();
        ProcessBuilder schemathesis = new ProcessBuilder(List.of("schemathesis", "--config-file", config.toString(),
                "run",
                api.base + "/openapi/slope-1.yml", "--url", api.base,
                "-H", "Authorization: Bearer " + api.aliceToken,
                "--checks", "not_a_server_error,client_errors_are_problem_json,response_schema_conformance",
                "--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", "20261127",
                "--workers", "1", "--request-timeout", "30", "--generation-database", "none", "--no-color"))
                .redirectErrorStream(true);
        schemathesis.environment().put("PYTHONPATH", hooks.toString());
        schemathesis.environment().put("SCHEMATHESIS_HOOKS", "slope_checks");
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
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("Tested: 12"), "every operation of the document was exercised:\n" + output);
    }
}
