package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.api.orchestration.CatalogueReconciler;
import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.spec.RunSpecCodec;
import io.slope.workflows.run.SlopeRunWorkflow;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** A run stored QUEUED whose workflow was never started (the API died in between) is started by the reconciler. */
class ReconcilerApiTest {
    @Test
    void aQueuedRunWithoutAWorkflowIsStarted() throws Exception {
        ApiHarness api = ServiceHarness.get();
        String corpus = api.corpus();
        UUID id = UUID.randomUUID();
        new RunCatalogue(new Database(api.env.get("SLOPE_DB_URL"), Duration.ofSeconds(10))).createRun(id, "alice",
                RunSpecCodec.parseResolved(ApiHarness.tinySpec("orphan", corpus, 10)),
                SlopeRunWorkflow.workflowId(id.toString()));
        assertEquals("QUEUED", api.get("/api/v1/runs/" + id, api.aliceToken).json().get("status").asText());
        List<UUID> restarted = api.server.getApplicationContext().getBean(CatalogueReconciler.class).reconcile();
        assertTrue(restarted.contains(id), restarted::toString);
        assertEquals("alice", api.fairnessKey(id.toString()), "started in its owner's share of the GPU queue");
        api.awaitRun(id.toString(), api.aliceToken, Duration.ofMinutes(3), ApiHarness.status("SUCCEEDED"));
        assertTrue(api.server.getApplicationContext().getBean(CatalogueReconciler.class).reconcile().isEmpty(),
                "nothing is started twice");
    }
}
