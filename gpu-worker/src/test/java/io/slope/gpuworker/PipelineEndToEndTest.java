package io.slope.gpuworker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunRow;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.DatasetManifest;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.workflowservice.v1.ListWorkflowExecutionsRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.slope.workflows.run.RunProgress;
import io.temporal.client.WorkflowFailedException;
import io.temporal.client.WorkflowStub;
import io.temporal.failure.CanceledFailure;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A tiny run through every stage against the real Temporal dev server, Postgres and S3Proxy. */
@org.junit.jupiter.api.TestMethodOrder(org.junit.jupiter.api.MethodOrderer.MethodName.class)
class PipelineEndToEndTest {
    private static final int STEPS = 40;
    private static PipelineHarness harness;
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() throws Exception {
        harness = new PipelineHarness("e2e_happy");
        harness.startGpuWorker();
    }

    @AfterAll
    static void stop() {
        harness.close();
    }

    private static UUID succeeded;

    @Test
    void a_tinyRunSucceedsThroughEveryStage() throws Exception {
        ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), STEPS);
        // Chunks of 8 steps, continue-as-new after every 2 chunks: several workflow runs, each routed to the
        // resident model.
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 2));
        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals(Stage.values().length, outcome.results().size());
        succeeded = id;

        RunRow row = harness.catalogue.run(id).orElseThrow();
        assertEquals("SUCCEEDED", row.status().name());
        assertEquals(STEPS, row.latestStep());
        assertEquals(STEPS, row.stepsDone());

        Map<String, Double> evals = finalEvals(id);
        harness.database().transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM progress_samples WHERE run_id = ?")) {
                ps.setObject(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    assertEquals(STEPS, rs.getInt(1), "one loss-curve sample per step, none twice");
                }
            }
            return null;
        });
        for (String name : new String[] {"val_loss_sparse", "val_loss_adapters", "val_loss_merged",
                "val_loss_inference_form"}) {
            assertTrue(evals.containsKey(name) && Double.isFinite(evals.get(name)), name + " in " + evals);
        }
        assertTrue(evals.get("val_loss_adapters") < Math.log(80), "it learned something: " + evals);

        var artifacts = harness.catalogue.artifacts(id);
        var paths = artifacts.stream().map(RunCatalogue.Artifact::path).toList();
        for (String expected : new String[] {"hf/config.json", "hf/model.safetensors", "slope/manifest.json",
                "report/evaluation.json"}) {
            assertTrue(paths.contains(expected), expected + " in " + paths);
        }
        for (RunCatalogue.Artifact artifact : artifacts) {
            byte[] content = harness.objects.getBytes(artifact.objectKey()).orElseThrow();
            assertEquals(artifact.bytes(), content.length, artifact.path());
            assertEquals(artifact.sha256(), DurableFiles.sha256Hex(content), artifact.path());
        }

        // Retention kept the last two checkpoints (and the best); the latest one is there and verifies.
        assertTrue(harness.catalogue.checkpoints(id).size() <= 3, harness.catalogue.checkpoints(id).toString());
        LoadedCheckpoint last = harness.finalCheckpoint(id, STEPS);
        LoadedCheckpoint reference = harness.uninterrupted(spec, outcome.results().get(Stage.PREPARE_DATA)
                .datasetId());
        assertEquals(reference.checkpoint().tensors(), last.checkpoint().tensors(),
                "chunked, resident and continued-as-new training equals one uninterrupted run, bit for bit");

        // The run is findable by its search attributes in the dev server's visibility store.
        PipelineHarness.await("visibility", Duration.ofSeconds(30), () -> harness.client.getWorkflowServiceStubs()
                .blockingStub().listWorkflowExecutions(ListWorkflowExecutionsRequest.newBuilder()
                        .setNamespace("default").setQuery("SlopeRunId = '" + id + "' AND SlopeStatus = 'SUCCEEDED' "
                                + "AND SlopeStage = 'finalize'").build()).getExecutionsCount() >= 1);
        assertEquals(SlopeRunWorkflow.workflowId(id.toString()), harness.client.getWorkflowServiceStubs()
                .blockingStub().listWorkflowExecutions(ListWorkflowExecutionsRequest.newBuilder()
                        .setNamespace("default").setQuery("SlopeRunId = '" + id + "'").build())
                .getExecutions(0).getExecution().getWorkflowId());
    }

    @Test
    void c_unreadableCorpusFailsAtOnceNamingIt() throws Exception {
        ResolvedSpec spec = PipelineHarness.tinySpec(dir.resolve("no-such-corpus.txt"), 10);
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0));
        long start = System.nanoTime();
        assertThrows(WorkflowFailedException.class, () -> harness.result(id, RunOutcome.class,
                Duration.ofMinutes(2)));
        assertTrue(System.nanoTime() - start < Duration.ofSeconds(30).toNanos(), "failed at once, not retried");
        RunRow row = harness.catalogue.run(id).orElseThrow();
        assertEquals("FAILED", row.status().name());
        assertTrue(row.error().startsWith("data.corpus: data.corpus[0]: ") && row.error().contains("does not exist"),
                row.error());
    }

    /**
     * Held-out files ({@code data.validation}, here an object in S3) through the service: the run's validation split is
     * exactly their text, and its validation losses are those `slope train` computes for the same spec and files.
     */
    @Test
    void e_heldOutFilesAreTheValidationSplit() throws Exception {
        int steps = 16;
        Path corpus = PipelineHarness.corpus(dir);
        String heldOut = PipelineHarness.heldOutText();
        harness.objects.putBytes("held-out/act-2.txt", heldOut.getBytes(StandardCharsets.UTF_8));
        ResolvedSpec spec = PipelineHarness.tinySpec(corpus, "s3://" + PipelineHarness.BUCKET + "/held-out/act-2.txt",
                steps);
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0));
        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
        assertEquals("SUCCEEDED", outcome.status());

        // The same spec trained by `slope train`, its held-out file a local copy of the object.
        Path heldOutCopy = Files.createDirectories(dir.resolve("held-out-local")).resolve("act-2.txt");
        Files.writeString(heldOutCopy, heldOut);
        Path referenceDir = dir.resolve("held-out-reference");
        LocalTrainingRun.Summary reference = LocalTrainingRun.start(PipelineHarness.tinySpec(corpus,
                heldOutCopy.toString(), steps), dir, referenceDir, PipelineHarness.QUIET);
        assertTrue(reference.finished());

        DatasetManifest manifest = new DatasetStore(harness.objects, Dataset.DEFAULT_TOKENS_PER_SHARD)
                .manifest(outcome.results().get(Stage.PREPARE_DATA).datasetId()).orElseThrow();
        DatasetManifest referenceManifest;
        try (Dataset dataset = Dataset.open(referenceDir.resolve(LocalTrainingRun.DATASET_DIR))) {
            referenceManifest = dataset.manifest();
        }
        assertEquals(0.0, manifest.valFraction());
        assertEquals(Corpus.read(List.of(heldOutCopy)).sha256(), manifest.heldOutSource().corpusSha256());
        assertEquals(heldOut.length(), manifest.validationTokens(), "char tokens: the held-out text, exactly");
        assertEquals(referenceManifest.validationShards(), manifest.validationShards(), "the same validation split");
        assertEquals(referenceManifest.trainShards(), manifest.trainShards(), "the same training split");

        Map<String, Double> evals = finalEvals(id);
        assertEquals(Map.of("val_loss_sparse", reference.valLossSparse(), "val_loss_adapters",
                reference.valLossAdapters(), "val_loss_merged", reference.valLossMerged(), "val_loss_inference_form",
                reference.valLossInferenceForm()), evals);
    }

    @Test
    void f_aBadHeldOutEntryFailsTheRunAtOnceNamingIt() throws Exception {
        ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir),
                "s3://" + PipelineHarness.BUCKET + "/held-out/no-such-act.txt", 10);
        UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0));
        assertThrows(WorkflowFailedException.class, () -> harness.result(id, RunOutcome.class,
                Duration.ofMinutes(2)));
        RunRow row = harness.catalogue.run(id).orElseThrow();
        assertEquals("FAILED", row.status().name());
        assertEquals("data.validation: data.validation[0]: s3://" + PipelineHarness.BUCKET
                + "/held-out/no-such-act.txt does not exist", row.error());
    }

    /** The run's final validation losses as the eval stage recorded them, by name. */
    private static Map<String, Double> finalEvals(UUID id) throws Exception {
        Map<String, Double> evals = new HashMap<>();
        harness.database().transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT name, value FROM eval_results WHERE run_id = ? "
                    + "AND name LIKE 'val_loss_%'")) {
                ps.setObject(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        assertNull(evals.put(rs.getString(1), rs.getDouble(2)), rs.getString(1) + " stored twice");
                    }
                }
            }
            return null;
        });
        return evals;
    }

    @Test
    void d_pauseResumeAndCancelOnRealServers() throws Exception {
        ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), 400);
        UUID id = harness.submit(spec, new RunOptions(400, 5, 2, 0));
        SlopeRunWorkflow workflow = harness.client.newWorkflowStub(SlopeRunWorkflow.class,
                SlopeRunWorkflow.workflowId(id.toString()));
        PipelineHarness.await("first checkpoints", Duration.ofMinutes(3), () -> harness.latestStep(id) >= 5);
        RunProgress paused = workflow.pause();
        assertTrue(paused.paused());
        assertEquals("PAUSED", harness.catalogue.run(id).orElseThrow().status().name());
        long atPause = harness.latestStep(id);
        int stepsAtPause = harness.catalogue.run(id).orElseThrow().stepsDone();
        assertEquals(stepsAtPause, atPause, "the chunk stopped on a committed checkpoint");
        Thread.sleep(3000);
        assertEquals(atPause, harness.latestStep(id), "no training while paused");
        assertFalse(workflow.resume().paused());
        PipelineHarness.await("training again", Duration.ofMinutes(2), () -> harness.latestStep(id) > atPause);
        WorkflowStub.fromTyped(workflow).cancel();
        WorkflowFailedException e = assertThrows(WorkflowFailedException.class,
                () -> harness.result(id, RunOutcome.class, Duration.ofMinutes(2)));
        assertTrue(e.getCause() instanceof CanceledFailure, e.getCause().toString());
        RunRow row = harness.catalogue.run(id).orElseThrow();
        assertEquals("CANCELLED", row.status().name());
        assertEquals(row.stepsDone(), row.latestStep(), "cancellation flushed a final checkpoint");
        assertTrue(row.latestStep() < 400);
    }

    @Test
    void b_retryFromStageReusesEarlierResults() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(succeeded != null, "needs the succeeded run");
        UUID id = succeeded;
        var results = harness.catalogue.stageResults(id);
        assertEquals(Stage.values().length, results.size());
        harness.catalogue.requeue(id, Stage.MERGE, RunCatalogue.Admission.NONE);
        ResolvedSpec spec = PipelineHarness.tinySpec(PipelineHarness.corpus(dir), STEPS);
        SlopeRunWorkflow workflow = harness.client.newWorkflowStub(SlopeRunWorkflow.class,
                io.temporal.client.WorkflowOptions.newBuilder().setWorkflowId(SlopeRunWorkflow.workflowId(
                        id.toString())).setTaskQueue(io.slope.workflows.run.TaskQueues.PIPELINE).build());
        int samplesBefore = harness.catalogue.checkpoints(id).size();
        RunOutcome outcome = workflow.run(new io.slope.workflows.run.RunInput(id.toString(), spec.toRunSpec(),
                new RunOptions(8, 5, 2, 0), Stage.MERGE, results, null));
        assertEquals("SUCCEEDED", outcome.status());
        assertEquals(results.get(Stage.ADAPTER_PHASE), outcome.results().get(Stage.ADAPTER_PHASE),
                "training was not run again");
        assertEquals(samplesBefore, harness.catalogue.checkpoints(id).size(), "no new checkpoint");
        assertEquals("SUCCEEDED", harness.catalogue.run(id).orElseThrow().status().name());
        assertTrue(harness.catalogue.events(id).stream().anyMatch(ev -> ev.contains("retry from stage merge")));
    }
}
