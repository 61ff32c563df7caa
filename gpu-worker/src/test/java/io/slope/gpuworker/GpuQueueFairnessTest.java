package io.slope.gpuworker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.spec.ResolvedSpec;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.client.WorkflowNotFoundException;
import java.nio.file.Path;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Instant;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU queue's order between users, on the real servers (ADR 034): one user's flood of queued runs does not keep
 * another user's run waiting until it drains. The order is kept by Temporal's task queue, so it holds across a restart
 * of the Temporal server, and for a GPU worker that starts only once everything is queued.
 */
class GpuQueueFairnessTest {
    private static final int FLOOD = 6;

    @TempDir
    static Path dir;

    @Test
    void anotherUsersRunTrainsBeforeOneUsersFloodDrains() throws Exception {
        List<UUID> flood = new ArrayList<>();
        try (PipelineHarness harness = new PipelineHarness("fair_queue")) {
            ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), 10);
            try {
                // No GPU worker yet: each run's first chunk waits on the GPU queue, alice's all before bob's.
                for (int i = 0; i < FLOOD; i++) {
                    flood.add(harness.submit(spec, RunOptions.DEFAULT, "alice"));
                    awaitChunkQueued(harness, flood.getLast());
                }
                UUID bobs = harness.submit(spec, RunOptions.DEFAULT, "bob");
                awaitChunkQueued(harness, bobs);

                TestServices.get().temporal().killAndRestart();
                harness.startGpuWorker();

                assertEquals("SUCCEEDED", harness.result(bobs, RunOutcome.class, Duration.ofMinutes(5)).status());
                Instant bobStarted = firstStepAt(harness, bobs).orElseThrow();
                List<UUID> before = new ArrayList<>();
                for (UUID id : flood) {
                    if (firstStepAt(harness, id).filter(alice -> alice.isBefore(bobStarted)).isPresent()) {
                        before.add(id);
                    }
                }
                // First in, first out trains all six of alice's runs first; round-robin between users takes bob's
                // first or second.
                assertTrue(before.size() < FLOOD / 2, before.size() + " of alice's " + FLOOD + " runs started "
                        + "training before bob's");
            } finally {
                for (UUID id : flood) {
                    try {
                        harness.client.newUntypedWorkflowStub(SlopeRunWorkflow.workflowId(id.toString()))
                                .terminate("test over: leave nothing on the GPU queue for the next test");
                    } catch (WorkflowNotFoundException finished) {
                        // it trained to the end
                    }
                }
            }
        }
    }

    /** When the run trained its first step, if it has. */
    private static Optional<Instant> firstStepAt(PipelineHarness harness, UUID id) throws SQLException {
        return harness.database().transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT min(recorded_at) FROM progress_samples WHERE run_id = ?")) {
                ps.setObject(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    return Optional.ofNullable(rs.getTimestamp(1)).map(Timestamp::toInstant);
                }
            }
        });
    }

    /** Until the run's workflow has a training chunk scheduled and waiting for a GPU worker. */
    private static void awaitChunkQueued(PipelineHarness harness, UUID id) throws InterruptedException {
        DescribeWorkflowExecutionRequest describe = DescribeWorkflowExecutionRequest.newBuilder()
                .setNamespace(harness.client.getOptions().getNamespace())
                .setExecution(WorkflowExecution.newBuilder().setWorkflowId(SlopeRunWorkflow.workflowId(id.toString())))
                .build();
        PipelineHarness.await("run " + id + "'s first chunk on the GPU queue", Duration.ofMinutes(2),
                () -> harness.client.getWorkflowServiceStubs().blockingStub().describeWorkflowExecution(describe)
                        .getPendingActivitiesList().stream()
                        .anyMatch(a -> a.getActivityType().getName().equals("TrainChunk")));
    }
}
