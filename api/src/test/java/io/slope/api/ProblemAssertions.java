package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;

/** Checks that a reply is the documented problem document. */
final class ProblemAssertions {
    private ProblemAssertions() {}

    static JsonNode assertProblem(ApiHarness.Reply reply, int status) {
        assertEquals(status, reply.status(), () -> "status; body: " + reply.body());
        assertTrue(reply.contentType().startsWith("application/problem+json"),
                () -> "content type " + reply.contentType() + "; body: " + reply.body());
        JsonNode problem = reply.json();
        assertNotNull(problem, "a problem body");
        assertEquals(status, problem.get("status").asInt());
        assertTrue(problem.get("type").asText().startsWith("https://slope.dev/problems/"), problem::toString);
        assertTrue(problem.hasNonNull("title"), problem::toString);
        assertTrue(problem.hasNonNull("detail"), problem::toString);
        return problem;
    }

    /** A 400 whose errors[] names {@code field}, with a message containing {@code fragment}. */
    static void assertFieldError(ApiHarness.Reply reply, String field, String fragment) {
        JsonNode problem = assertProblem(reply, 400);
        for (JsonNode error : problem.path("errors")) {
            if (error.get("field").asText().equals(field) && error.get("message").asText().contains(fragment)) {
                return;
            }
        }
        throw new AssertionError("no error for field " + field + " containing '" + fragment + "' in " + problem);
    }
}
