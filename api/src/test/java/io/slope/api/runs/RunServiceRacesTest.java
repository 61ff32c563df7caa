package io.slope.api.runs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micronaut.context.ApplicationContext;
import io.micronaut.http.HttpStatus;
import io.slope.api.ApiHarness;
import io.slope.api.auth.Caller;
import io.slope.api.config.GpuSettings;
import io.slope.api.config.StorageSettings;
import io.slope.api.corpora.CorpusReferences;
import io.slope.api.orchestration.RunWorkflows;
import io.slope.api.problem.ProblemException;
import io.slope.api.quota.Quotas;
import io.slope.api.storage.Storage;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunPageReads;
import io.slope.catalogue.RunRow;
import io.slope.catalogue.RunStatus;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.storage.ObjectStore;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.sql.DataSource;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * RunService where a request meets another or Temporal fails: on the real catalogue, with the workflow starts
 * recorded (or failing) instead of sent, so the runs here are rows only.
 */
class RunServiceRacesTest {
    private static final Caller ALICE = new Caller("alice", false);

    private static ApplicationContext context;
    private static RunCatalogue catalogue;

    @BeforeAll
    static void start() throws Exception {
        context = ApiHarness.get().server.getApplicationContext();
        catalogue = context.getBean(RunCatalogue.class);
    }

    private static RunService service(RunWorkflows workflows, Storage storage) {
        return new RunService(catalogue, context.getBean(RunPageReads.class), workflows,
                context.getBean(CorpusReferences.class), storage, context.getBean(Quotas.class),
                context.getBean(GpuSettings.class));
    }

    /** A FAILED run of alice's, stored as a finished run is. */
    private static UUID failedRun() throws Exception {
        UUID id = UUID.randomUUID();
        ResolvedSpec spec = RunSpecCodec.parseResolved(ApiHarness.tinySpec("race", "/corpus.txt", 10));
        catalogue.createRun(id, "alice", spec, "run-" + id);
        try (Connection c = context.getBean(DataSource.class).getConnection();
                PreparedStatement ps = c.prepareStatement("UPDATE runs SET status = 'FAILED', error = 'boom', "
                        + "finished_at = now() WHERE id = ?")) {
            ps.setObject(1, id);
            ps.executeUpdate();
        }
        return id;
    }

    @Test
    void aRetryRacingADeleteDoesNotRestartTheDeletedRun() throws Exception {
        UUID id = failedRun();
        RecordedStarts workflows = new RecordedStarts(context, null);
        CompletableFuture<RunService> self = new CompletableFuture<>();
        CompletableFuture<Object> retry = new CompletableFuture<>();
        // The retry comes while the delete removes the run's objects.
        Storage storage = new Storage(context.getBean(StorageSettings.class)) {
            @Override
            public ObjectStore objects() {
                if (!retry.isDone()) {
                    Thread.ofVirtual().start(() -> {
                        try {
                            retry.complete(self.join().retry(ALICE, id, Stage.PREPARE_DATA.wireName()));
                        } catch (Exception | Error e) {
                            retry.completeExceptionally(e);
                        }
                    });
                    try {
                        retry.get(2, TimeUnit.SECONDS);
                    } catch (TimeoutException blocked) {
                        // held back by the delete: what should happen
                    } catch (InterruptedException | ExecutionException e) {
                        // the retry's outcome is checked below
                    }
                }
                return super.objects();
            }
        };
        RunService service = service(workflows, storage);
        self.complete(service);
        service.delete(ALICE, id);

        ExecutionException refused = assertThrows(ExecutionException.class, () -> retry.get(30, TimeUnit.SECONDS));
        ProblemException problem = assertInstanceOf(ProblemException.class, refused.getCause());
        assertEquals(HttpStatus.NOT_FOUND, problem.status(), problem.getMessage());
        assertEquals(List.of(), workflows.started, "no workflow is started for a deleted run");
        assertTrue(catalogue.run(id).isEmpty(), "the run is deleted");
    }

    @Test
    void aRetryWhoseWorkflowCannotStartLeavesTheRunAsItWas() throws Exception {
        UUID id = failedRun();
        RunRow before = catalogue.run(id).orElseThrow();
        RunService service = service(new RecordedStarts(context, new IllegalStateException("UNAVAILABLE: io exception")),
                context.getBean(Storage.class));

        ProblemException problem = assertThrows(ProblemException.class,
                () -> service.retry(ALICE, id, Stage.PREPARE_DATA.wireName()));
        assertEquals(HttpStatus.SERVICE_UNAVAILABLE, problem.status());
        assertTrue(problem.getMessage().contains("try again"), problem.getMessage());
        RunRow after = catalogue.run(id).orElseThrow();
        assertEquals(RunStatus.FAILED, after.status());
        assertEquals("boom", after.error());
        assertEquals(before.finishedAt(), after.finishedAt());
    }
}
