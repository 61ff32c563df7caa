package io.slope.gpuworker;

import io.slope.activities.catalogue.RunCatalogue;
import io.slope.activities.checkpoint.AsyncCheckpointStore;
import io.slope.activities.checkpoint.CatalogedCheckpointStore;
import io.slope.activities.checkpoint.S3CheckpointStore;
import io.slope.activities.data.DatasetStore;
import io.slope.activities.pipeline.ExportManifest;
import io.slope.activities.pipeline.PipelineActivitiesImpl;
import io.slope.activities.storage.ObjectStore;
import io.slope.engine.backend.Backends;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.checkpoint.Safetensors;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.InvalidTokenShardException;
import io.slope.engine.export.HfExport;
import io.slope.engine.export.SlopeExport;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptModel;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.pipeline.CheckpointRef;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.ChunkRequest;
import io.slope.workflows.run.ChunkResult;
import io.slope.workflows.run.CollectiveRendezvous;
import io.slope.workflows.run.RankedChunk;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.slope.workflows.run.ModelActivities;
import io.slope.workflows.run.ModelRequest;
import io.temporal.activity.Activity;
import io.temporal.activity.ActivityExecutionContext;
import io.temporal.client.ActivityCanceledException;
import io.temporal.client.ActivityCompletionException;
import io.temporal.failure.ApplicationFailure;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Semaphore;
import java.util.function.BooleanSupplier;

/**
 * The model stages on one worker. The model stays resident between activities of the same run (the next chunk comes
 * to this worker's own queue); any other run, or a chunk whose run is not resident, opens a session that restores the
 * newest committed checkpoint from S3. One activity at a time, across both queues the worker polls.
 */
public final class ModelActivitiesImpl implements ModelActivities {
    private static final System.Logger LOG = System.getLogger(ModelActivitiesImpl.class.getName());
    /**
     * How long rank 0 waits for its peers to join, and any rank for a silent peer, before taking it for dead (a rank
     * waits while rank 0 alone evaluates and checkpoints). Cancellation aborts sooner.
     */
    static final Duration COLLECTIVE_TIMEOUT = Duration.ofMinutes(2);
    /**
     * How long rank 0, cancelled for a pause, leaves its group to stop after an agreed step (with a checkpoint) before
     * it aborts its collective all the same: a peer may be dead.
     */
    static final Duration PAUSE_GRACE = Duration.ofSeconds(60);

    private final ObjectStore objects;
    private final DatasetStore datasets;
    private final RunCatalogue catalogue;
    private final RunCatalogue progressCatalogue;
    private final Path cacheDir;
    private final Path scratchDir;
    private final String workerQueue;
    private final Semaphore slot = new Semaphore(1);
    private volatile boolean stopping;
    private Resident resident;

    /** A run's model in memory, with what it needs to go on. */
    private static final class Resident implements AutoCloseable {
        final String runId;
        final Dataset dataset;
        final CatalogedCheckpointStore store;
        final AsyncCheckpointStore uploads;
        final TrainingSession session;
        final ProgressRecorder progress;
        TrainingSession.FinalEvaluation finalEvaluation;

        Resident(String runId, Dataset dataset, CatalogedCheckpointStore store, AsyncCheckpointStore uploads,
                TrainingSession session, ProgressRecorder progress) {
            this.runId = runId;
            this.dataset = dataset;
            this.store = store;
            this.uploads = uploads;
            this.session = session;
            this.progress = progress;
        }

        @Override
        public void close() {
            try {
                uploads.close();
            } catch (IOException e) {
                LOG.log(System.Logger.Level.WARNING, "run " + runId + ": last checkpoint upload failed: "
                        + e.getMessage());
            } finally {
                session.close();
                dataset.close();
            }
        }
    }

    public ModelActivitiesImpl(ObjectStore objects, DatasetStore datasets, RunCatalogue catalogue,
            RunCatalogue progressCatalogue, Path cacheDir, Path scratchDir, String workerQueue) {
        this.objects = objects;
        this.datasets = datasets;
        this.catalogue = catalogue;
        this.progressCatalogue = progressCatalogue;
        this.cacheDir = cacheDir;
        this.scratchDir = scratchDir;
        this.workerQueue = workerQueue;
    }

    /** Graceful shutdown: the running chunk stops at its next step with a checkpoint; waits for it to return. */
    public void stopAndWait(long timeoutMillis) throws InterruptedException {
        stopping = true;
        if (slot.tryAcquire(timeoutMillis, java.util.concurrent.TimeUnit.MILLISECONDS)) {
            slot.release();
        }
    }

    @Override
    public ChunkResult trainChunk(ChunkRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return withSlot(context, request.runId(), () -> {
            Resident r = residentFor(request.runId(), request.spec(), request.datasetId(), context);
            long deadline = System.nanoTime() + request.maxMinutes() * 60_000_000_000L;
            try (Heartbeater heartbeat = new Heartbeater(context, () -> details(r))) {
                TrainingSession.ChunkResult chunk;
                try {
                    chunk = r.session.trainUntil(request.stopStep(),
                            () -> stopping || heartbeat.stopRequested() || System.nanoTime() > deadline);
                    r.uploads.flush(); // the chunk ends on a committed checkpoint
                } catch (RuntimeException | IOException e) {
                    dropResident();
                    throw e;
                }
                r.progress.flush();
                heartbeat.rethrowIfCancelled();
                LOG.log(System.Logger.Level.INFO, "run " + request.runId() + ": " + request.stage().wireName()
                        + " chunk ended after step " + chunk.stepsDone());
                return new ChunkResult(chunk.stepsDone(), checkpointRef(r), stopping ? null : workerQueue);
            }
        });
    }

    @Override
    public ChunkResult trainChunkAsRank(RankedChunk request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        ChunkRequest chunk = request.chunk();
        return withSlot(context, chunk.runId(), () -> {
            dropResident(); // the group restores the committed checkpoint; this worker's memory goes to this rank
            GroupMember member = new GroupMember(request.rank(), () -> pauseRequested(context));
            try (Heartbeater heartbeat = new Heartbeater(context, member::details, member::stopped)) {
                try {
                    Collective collective = rendezvous(request, context, member);
                    Resident r = open(chunk.runId(), chunk.spec(), chunk.datasetId(), context, collective);
                    member.resident = r;
                    long deadline = System.nanoTime() + chunk.maxMinutes() * 60_000_000_000L;
                    TrainingSession.ChunkResult result = r.session.trainUntil(chunk.stopStep(),
                            () -> stopping || heartbeat.stopRequested() || System.nanoTime() > deadline);
                    member.trained();
                    r.uploads.flush(); // the chunk ends on a committed checkpoint (rank 0 writes it)
                    r.progress.flush();
                    heartbeat.rethrowIfCancelled();
                    LOG.log(System.Logger.Level.INFO, "run " + chunk.runId() + ": rank " + request.rank() + " of "
                            + request.ranks() + " ended its " + chunk.stage().wireName() + " chunk after step "
                            + result.stepsDone());
                    return new ChunkResult(result.stepsDone(), request.rank() == 0 ? checkpointRef(r) : null, null);
                } catch (RuntimeException | IOException e) {
                    heartbeat.rethrowIfCancelled(); // the cancellation aborted the collective: report it as such
                    throw e;
                } finally {
                    member.close();
                }
            }
        });
    }

    /**
     * Rank 0 listens and reports the collective's id to its workflow (which then starts the other ranks with it), then
     * waits for them; the other ranks join with the id. The spec's backend names the rendezvous: loopback TCP on the
     * CPU, NCCL on CUDA (on this process's GPU 0, the one the session then opens; ADR 041).
     */
    private static Collective rendezvous(RankedChunk request, ActivityExecutionContext context, GroupMember member)
            throws IOException {
        CollectiveProvider provider = Backends.collectives(request.chunk().spec());
        if (request.rank() != 0) {
            member.collective = provider.join(request.collectiveId(), request.rank(), request.ranks(),
                    COLLECTIVE_TIMEOUT);
            return member.collective;
        }
        member.host = provider.listen(request.ranks(), COLLECTIVE_TIMEOUT);
        context.getWorkflowClient().newWorkflowStub(SlopeRunWorkflow.class, context.getInfo().getWorkflowId())
                .collectiveReady(new CollectiveRendezvous(request.group(), member.host.uniqueId()));
        member.collective = member.host.awaitPeers();
        return member.collective;
    }

    /**
     * Whether the run's workflow is pausing: rank 0 is cancelled alone for a pause (the group then stops gracefully),
     * with every other rank when a rank failed or the run is cancelled (each aborts at once). Unknown counts as no.
     */
    private static boolean pauseRequested(ActivityExecutionContext context) {
        try {
            return context.getWorkflowClient().newWorkflowStub(SlopeRunWorkflow.class,
                    context.getInfo().getWorkflowId()).progress().paused();
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "could not ask workflow " + context.getInfo().getWorkflowId()
                    + " whether it is pausing (" + e.getMessage() + "); aborting the collective");
            return false;
        }
    }

    /**
     * What one rank holds while its group trains; on cancellation (from the heartbeat thread) it aborts its collective,
     * except rank 0 cancelled for a pause, which stops gracefully and aborts only after {@link #PAUSE_GRACE}.
     */
    private static final class GroupMember implements AutoCloseable {
        final int rank;
        final BooleanSupplier pausing;
        volatile CollectiveProvider.Rendezvous host;
        volatile Collective collective;
        volatile Resident resident;
        private boolean ended;

        GroupMember(int rank, BooleanSupplier pausing) {
            this.rank = rank;
            this.pausing = pausing;
        }

        Heartbeater.Details details() {
            Resident r = resident;
            return r == null ? null : ModelActivitiesImpl.details(r);
        }

        /**
         * A heartbeat reported cancellation, timeout or shutdown. Rank 0 cancelled for a pause, its peers joined, lets
         * the training loop stop: its stop flag reaches every rank through the loop's agreed stop, so all stop after
         * the same step and rank 0 commits the checkpoint there. Any other stop aborts at once (before the peers have
         * joined nothing has been trained, and they may never come); a failing group cancels every rank, so rank 0's
         * next collective fails promptly too, whatever it decided.
         */
        void stopped(ActivityCompletionException e) {
            if (rank == 0 && e instanceof ActivityCanceledException && collective != null && pausing.getAsBoolean()) {
                LOG.log(System.Logger.Level.INFO, "rank 0 cancelled for a pause: the group stops after the next step "
                        + "with a checkpoint (aborting in " + PAUSE_GRACE.toSeconds() + " s otherwise)");
                Thread.ofVirtual().name("pause-grace").start(() -> {
                    try {
                        Thread.sleep(PAUSE_GRACE);
                    } catch (InterruptedException interrupted) {
                        return;
                    }
                    synchronized (this) {
                        if (!ended) {
                            LOG.log(System.Logger.Level.WARNING, "rank 0's group did not stop within "
                                    + PAUSE_GRACE.toSeconds() + " s of the pause; aborting its collective");
                            abort();
                        }
                    }
                });
                return;
            }
            abort();
        }

        /** The training loop has ended: a pause's grace has nothing left to abort. */
        synchronized void trained() {
            ended = true;
        }

        /** No rank may stay blocked on a peer once the workflow has given the group up. */
        void abort() {
            closeHost();
            Collective c = collective;
            if (c != null) {
                c.abort("the workflow cancelled this rank's chunk");
            }
        }

        private void closeHost() {
            CollectiveProvider.Rendezvous h = host;
            if (h != null) {
                try {
                    h.close();
                } catch (IOException ignored) {
                    // the listener is unusable either way
                }
            }
        }

        @Override
        public void close() {
            trained();
            try {
                if (resident != null) {
                    resident.close();
                }
            } finally {
                closeHost();
                if (collective != null) {
                    collective.close();
                }
            }
        }
    }

    @Override
    public StageResult merge(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return withSlot(context, request.runId(), () -> {
            Resident r = finished(request, context);
            TrainingSession.FinalEvaluation evaluation = r.finalEvaluation;
            String prefix = "runs/" + request.runId() + "/merge/";
            Path file = tempFile("dense");
            try {
                Safetensors.write(file, denseTensors(r.session.model(), evaluation), Map.of("form", "dense-export"));
                objects.putFile(prefix + "dense.safetensors", file);
            } finally {
                Files.deleteIfExists(file);
            }
            return StageResult.output(Stage.MERGE, prefix, evaluations(evaluation));
        });
    }

    @Override
    public StageResult evaluate(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return withSlot(context, request.runId(), () -> {
            Resident r = finished(request, context);
            Map<String, Double> values = evaluations(r.finalEvaluation);
            UUID id = UUID.fromString(request.runId());
            for (Map.Entry<String, Double> e : values.entrySet()) {
                // val_loss_sparse is recorded at the step it was measured (the sparse phase's end), where training
                // already recorded it: one row, not a second at the last step.
                int step = e.getKey().equals("val_loss_sparse") ? r.session.adapterStartStep()
                        : r.session.totalSteps();
                catalogue.recordEval(id, step, e.getKey(), e.getValue());
            }
            return StageResult.output(Stage.EVAL, null, values);
        });
    }

    @Override
    public StageResult export(ModelRequest request) {
        ActivityExecutionContext context = Activity.getExecutionContext();
        return withSlot(context, request.runId(), () -> {
            Resident r = finished(request, context);
            String prefix = ExportManifest.prefix(request.runId());
            List<ExportManifest.File> files = new ArrayList<>();
            Path local = scratchDir.resolve("export-" + request.runId() + "-" + System.nanoTime());
            try {
                GptModel model = r.session.model();
                var tokenizer = r.dataset.tokenizer();
                HfExport.write(local.resolve("hf"), model.config(), r.finalEvaluation.denseExport(), tokenizer);
                SlopeExport.write(local.resolve("slope"), model.config(), tokenizer, r.finalEvaluation.model());
                for (String kind : new String[] {"hf", "slope"}) {
                    List<Path> exported;
                    try (var walk = Files.walk(local.resolve(kind))) {
                        exported = walk.filter(Files::isRegularFile).sorted().toList();
                    }
                    for (Path file : exported) {
                        String path = local.relativize(file).toString();
                        objects.putFile(prefix + path, file);
                        files.add(new ExportManifest.File(path, kind, Files.size(file),
                                PipelineActivitiesImpl.sha256(file)));
                    }
                }
            } finally {
                DurableFiles.deleteRecursively(local);
            }
            uploadBytes(prefix, "report/evaluation.json", reportJson(r.finalEvaluation), files);
            objects.putBytes(prefix + ExportManifest.NAME, new ExportManifest(files).toJson());
            return StageResult.output(Stage.EXPORT, prefix, Map.of("files", (double) files.size()));
        });
    }

    // --- the resident model

    private Resident residentFor(String runId, RunSpec spec, String datasetId, ActivityExecutionContext context)
            throws IOException {
        if (resident != null && resident.runId.equals(runId)) {
            long latest;
            try {
                latest = catalogue.run(UUID.fromString(runId)).map(RunCatalogue.RunRow::latestStep).orElse(-1L);
            } catch (SQLException e) {
                latest = -1; // cannot tell: restoring from S3 is always correct
            }
            if (latest == resident.session.stepsDone()) {
                return resident;
            }
            LOG.log(System.Logger.Level.INFO, "run " + runId + ": resident model is at step "
                    + resident.session.stepsDone() + " but the latest checkpoint is " + latest + "; restoring");
        }
        dropResident();
        resident = open(runId, spec, datasetId, context, Collective.single());
        return resident;
    }

    /**
     * Opens a session of the run from its newest committed checkpoint, as one rank of {@code collective}: rank 0
     * records progress and writes checkpoints; the other ranks only take part.
     */
    private Resident open(String runId, RunSpec spec, String datasetId, ActivityExecutionContext context,
            Collective collective) throws IOException {
        if (datasetId == null) {
            throw ApplicationFailure.newNonRetryableFailure("run " + runId + " has no prepared dataset; retry from "
                    + "stage prepareData", "MissingDataset");
        }
        UUID id = UUID.fromString(runId);
        Dataset dataset;
        try {
            dataset = datasets.fetch(datasetId, cacheDir);
        } catch (InvalidTokenShardException e) {
            throw ApplicationFailure.newNonRetryableFailure("dataset " + datasetId + ": " + e.getMessage(),
                    "InvalidDataset");
        }
        CatalogedCheckpointStore store = new CatalogedCheckpointStore(new S3CheckpointStore(objects, runId,
                scratchDir.resolve(runId)), catalogue, id);
        ProgressRecorder progress = new ProgressRecorder(progressCatalogue, id);
        String writer = workerQueue + "/" + context.getInfo().getActivityId() + "/attempt-"
                + context.getInfo().getAttempt();
        AsyncCheckpointStore uploads = new AsyncCheckpointStore(store);
        TrainingSession session;
        try {
            TrainingSession.Listener listener = collective.rank() == 0 ? listener(store, progress) : quiet(runId);
            session = TrainingSession.open(spec, dataset, uploads, writer, listener, collective);
            uploads.flush(); // a step-0 checkpoint is committed before anything relies on it
        } catch (InvalidSpecException | IllegalArgumentException e) {
            uploads.close();
            dataset.close();
            throw ApplicationFailure.newNonRetryableFailure(e.getMessage(), "InvalidSpec");
        } catch (IOException | RuntimeException e) {
            uploads.close();
            dataset.close();
            throw e;
        }
        if (collective.rank() == 0) {
            String where = collective.worldSize() > 1 ? "rank 0 of " + collective.worldSize() + " on "
                    : "model resident on ";
            progress.info(where + workerQueue + " after step " + session.stepsDone());
            progress.flush();
        }
        return new Resident(runId, dataset, store, uploads, session, progress);
    }

    /** A rank other than 0 reports nothing to the catalogue (rank 0 does, once for the group); it logs. */
    private static TrainingSession.Listener quiet(String runId) {
        return new TrainingSession.Listener() {
            @Override
            public void onInfo(String line) {
                LOG.log(System.Logger.Level.INFO, "run " + runId + ": " + line);
            }
        };
    }

    private Resident finished(ModelRequest request, ActivityExecutionContext context) throws IOException {
        Resident r = residentFor(request.runId(), request.spec(), request.datasetId(), context);
        if (r.session.stepsDone() < r.session.totalSteps()) {
            throw ApplicationFailure.newNonRetryableFailure("run " + request.runId() + " has trained "
                    + r.session.stepsDone() + " of " + r.session.totalSteps() + " steps; retry from stage "
                    + "adapterPhase", "NotTrained");
        }
        if (r.finalEvaluation == null) {
            try (Heartbeater heartbeat = new Heartbeater(context, () -> details(r))) {
                r.finalEvaluation = r.session.finish();
            }
        }
        return r;
    }

    private static TrainingSession.Listener listener(CatalogedCheckpointStore store, ProgressRecorder progress) {
        return new TrainingSession.Listener() {
            @Override
            public void onInfo(String line) {
                progress.info(line);
            }

            @Override
            public void onStep(Trainer.StepStats stats, int totalSteps) {
                progress.step(stats);
            }

            @Override
            public void onEval(int step, String form, double valLoss) {
                store.noteValidationLoss(step, valLoss);
                progress.eval(step, form.equals("sparse") ? "val_loss_sparse" : "val_loss", valLoss);
            }
        };
    }

    private void dropResident() {
        if (resident != null) {
            try {
                resident.close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "closing the resident model: " + e.getMessage());
            }
            resident = null;
        }
    }

    private interface Body<T> {
        T run() throws IOException, SQLException;
    }

    private <T> T withSlot(ActivityExecutionContext context, String runId, Body<T> body) {
        try {
            while (!slot.tryAcquire(3, java.util.concurrent.TimeUnit.SECONDS)) {
                context.heartbeat(null); // waiting for the one slot; cancellation still reaches us
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the worker's slot", e);
        }
        try {
            return body.run();
        } catch (IOException e) {
            throw new UncheckedIOException("run " + runId + ": " + e.getMessage(), e);
        } catch (SQLException e) {
            throw new IllegalStateException("run " + runId + ": catalogue: " + e.getMessage(), e);
        } finally {
            slot.release();
        }
    }

    private static Heartbeater.Details details(Resident r) {
        return new Heartbeater.Details(r.session.stepsDone(), checkpointRef(r));
    }

    private static CheckpointRef checkpointRef(Resident r) {
        var last = r.store.lastCommitted();
        return last == null ? null : new CheckpointRef(last.step(), last.prefix(), last.manifestSha256());
    }

    // --- exports

    private static Map<String, Double> evaluations(TrainingSession.FinalEvaluation e) {
        Map<String, Double> values = new LinkedHashMap<>();
        values.put("val_loss_sparse", e.valLossSparse());
        values.put("val_loss_adapters", e.valLossAdapters());
        values.put("val_loss_merged", e.valLossMerged());
        values.put("val_loss_inference_form", e.valLossInferenceForm());
        return values;
    }

    private static List<NamedTensor> denseTensors(GptModel model, TrainingSession.FinalEvaluation e) {
        Map<String, int[]> shapes = GptModel.parameterShapes(Merge.denseConfig(model.config()));
        List<NamedTensor> tensors = new ArrayList<>();
        for (Map.Entry<String, double[]> t : e.denseExport().entrySet()) {
            int[] shape = shapes.get(t.getKey());
            long[] dims = shape == null ? new long[] {t.getValue().length} : toLongs(shape);
            tensors.add(NamedTensor.f32(t.getKey(), dims, t.getValue()));
        }
        return tensors;
    }

    private static byte[] reportJson(TrainingSession.FinalEvaluation e) {
        StringBuilder json = new StringBuilder("{\n");
        var values = evaluations(e);
        int i = 0;
        for (var entry : values.entrySet()) {
            json.append("  \"").append(entry.getKey()).append("\": ").append(entry.getValue())
                    .append(++i < values.size() ? ",\n" : "\n");
        }
        return json.append("}\n").toString().getBytes(StandardCharsets.UTF_8);
    }

    private void uploadBytes(String prefix, String path, byte[] content, List<ExportManifest.File> files)
            throws IOException {
        objects.putBytes(prefix + path, content);
        files.add(new ExportManifest.File(path, "report", content.length, DurableFiles.sha256Hex(content)));
    }

    private Path tempFile(String what) throws IOException {
        Files.createDirectories(scratchDir);
        return scratchDir.resolve(what + "-" + System.nanoTime() + ".safetensors");
    }

    private static long[] toLongs(int[] shape) {
        long[] l = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            l[i] = shape[i];
        }
        return l;
    }
}
