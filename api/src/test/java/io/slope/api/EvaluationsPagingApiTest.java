package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.context.ApplicationContext;
import io.slope.catalogue.RunCatalogue;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.util.UUID;
import javax.sql.DataSource;
import org.junit.jupiter.api.Test;

/** A run's evaluations are bounded in its detail and paged in /metrics, however many it has. */
class EvaluationsPagingApiTest {
    @Test
    void detailShowsTheNewestEvaluationsAndMetricsPagesThemFromAfterStep() throws Exception {
        ApiHarness api = ApiHarness.get();
        ApplicationContext context = api.server.getApplicationContext();
        UUID id = UUID.randomUUID();
        ResolvedSpec spec = RunSpecCodec.parseResolved(ApiHarness.tinySpec("evals", "/c.txt", 500));
        context.getBean(RunCatalogue.class).createRun(id, "alice", spec, "run-" + id);
        // 250 evaluations: two names at each of steps 0 to 124.
        try (Connection c = context.getBean(DataSource.class).getConnection();
                PreparedStatement ps = c.prepareStatement("INSERT INTO eval_results (run_id, step, name, value) "
                        + "SELECT ?, s, n, s FROM generate_series(0, 124) s, unnest(ARRAY['a', 'b']) n")) {
            ps.setObject(1, id);
            ps.executeUpdate();
        }

        JsonNode evals = api.get("/api/v1/runs/" + id, api.aliceToken).json().get("evals");
        assertEquals(100, evals.size(), "the newest 100");
        assertEquals(75, evals.get(0).get("step").asInt(), "oldest first");
        assertEquals(124, evals.get(99).get("step").asInt());

        JsonNode page = api.get("/api/v1/runs/" + id + "/metrics?afterStep=100&limit=10", api.aliceToken).json()
                .get("evals");
        assertEquals(10, page.size(), page::toString);
        // From afterStep itself: an evaluation of the last step seen may come after that step's sample.
        assertEquals(100, page.get(0).get("step").asInt());
        assertEquals(104, page.get(9).get("step").asInt());
        JsonNode all = api.get("/api/v1/runs/" + id + "/metrics", api.aliceToken).json().get("evals");
        assertTrue(all.size() == 250 && all.get(0).get("step").asInt() == 0, "the default limit holds them all");
    }
}
