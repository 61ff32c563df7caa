package io.slope.api.orchestration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.micronaut.context.ApplicationContext;
import io.micronaut.http.HttpStatus;
import io.slope.api.ApiHarness;
import io.slope.api.problem.ProblemException;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** RunWorkflows against the Temporal dev server when a run's workflow does not answer. */
class RunWorkflowsTest {
    private static ApplicationContext context;

    @BeforeAll
    static void start() throws Exception {
        context = ApiHarness.get().server.getApplicationContext();
    }

    @Test
    void aPauseNobodyAcceptsIs503AndLeavesNoThreadWaitingOnTemporal() throws Exception {
        String runId = UUID.randomUUID().toString();
        // A run's workflow on a task queue no worker polls: an Update sent to it is never accepted.
        WorkflowStub unserved = context.getBean(WorkflowClient.class).newUntypedWorkflowStub("SlopeRunWorkflow",
                WorkflowOptions.newBuilder().setWorkflowId(SlopeRunWorkflow.workflowId(runId))
                        .setTaskQueue("nobody-polls-" + runId).build());
        unserved.start();
        try {
            RunWorkflows workflows = context.getBean(RunWorkflows.class);
            for (int i = 0; i < 2; i++) {
                ProblemException problem = assertThrows(ProblemException.class, () -> workflows.pause(runId));
                assertEquals(HttpStatus.SERVICE_UNAVAILABLE, problem.status());
            }
            long deadline = System.nanoTime() + 10_000_000_000L;
            List<String> waiting;
            do {
                Thread.sleep(200);
                waiting = threadsIn("startUpdate");
            } while (!waiting.isEmpty() && System.nanoTime() < deadline);
            assertEquals(List.of(), waiting, "threads still waiting for the Updates that timed out");
        } finally {
            unserved.terminate("test over");
        }
    }

    private static List<String> threadsIn(String method) {
        return Thread.getAllStackTraces().entrySet().stream()
                .filter(e -> Arrays.stream(e.getValue()).anyMatch(f -> f.getMethodName().equals(method)
                        && f.getClassName().startsWith("io.temporal.")))
                .map(Map.Entry::getKey).map(Thread::getName).toList();
    }
}
