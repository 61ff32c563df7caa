package io.slope.api.runs;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.micronaut.http.HttpStatus;
import io.slope.api.auth.Caller;
import io.slope.api.config.GpuSettings;
import io.slope.api.corpora.CorpusReferences;
import io.slope.api.orchestration.RunWorkflows;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.quota.Quotas;
import io.slope.api.quota.Quotas.Demand;
import io.slope.api.runs.RunViews.Artifact;
import io.slope.api.runs.RunViews.Artifacts;
import io.slope.api.runs.RunViews.CheckpointView;
import io.slope.api.runs.RunViews.EvalResult;
import io.slope.api.runs.RunViews.EventView;
import io.slope.api.runs.RunViews.Links;
import io.slope.api.runs.RunViews.Metrics;
import io.slope.api.runs.RunViews.RunDetail;
import io.slope.api.runs.RunViews.RunPage;
import io.slope.api.runs.RunViews.RunSummary;
import io.slope.api.runs.RunViews.Sample;
import io.slope.api.runs.RunViews.StageView;
import io.slope.api.storage.Storage;
import io.slope.catalogue.ChosenOptions;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunCatalogue.PageStart;
import io.slope.catalogue.RunPageReads;
import io.slope.catalogue.RunRow;
import io.slope.catalogue.RunStatus;
import io.slope.spec.BackendChoice;
import io.slope.spec.GpuMemoryEstimate;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.SlopeRunWorkflow;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.SQLException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the runs endpoints do. Postgres is the catalogue (every read comes from there); Temporal is told to start,
 * cancel, pause, resume and change ranks. A caller sees only their own runs unless they are an admin: another
 * user's run is a 404, exactly like a run that does not exist, so ids cannot be probed.
 */
@Singleton
public class RunService {
    private static final Logger LOG = LoggerFactory.getLogger(RunService.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper STRICT_JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final int EVENTS_SHOWN = 50;
    /** A detail's evaluations: the newest; all of them page through /metrics. */
    private static final int EVALS_SHOWN = 100;

    private final RunCatalogue catalogue;
    private final RunPageReads page;
    private final RunWorkflows workflows;
    private final CorpusReferences corpora;
    private final Storage storage;
    private final Quotas quotas;
    private final GpuSettings gpu;

    public RunService(RunCatalogue catalogue, RunPageReads page, RunWorkflows workflows, CorpusReferences corpora,
            Storage storage, Quotas quotas, GpuSettings gpu) {
        this.catalogue = catalogue;
        this.page = page;
        this.workflows = workflows;
        this.corpora = corpora;
        this.storage = storage;
        this.quotas = quotas;
        this.gpu = gpu;
    }

    /**
     * Validates the spec with the spec codec, a {@code cuda} run's memory against the service's GPUs, the run
     * options ({@code "options"} beside the spec's fields, see {@link OptionsRequest}) against it and its corpus and
     * held-out entries ({@link CorpusReferences}), stores the run
     * QUEUED with its options within the caller's quotas (a 429 and nothing stored over one), then starts its
     * workflow. When Temporal cannot be reached the run stays QUEUED, stored, and the reconciler starts it once
     * Temporal is back.
     */
    public RunDetail submit(Caller caller, String body) throws SQLException {
        if (body == null || body.isBlank()) {
            throw ProblemException.badField("$", "the request body must be a run spec (JSON); docs/spec.md lists "
                    + "its fields");
        }
        String specJson = body;
        JsonNode options = null;
        if (readObject(body) instanceof ObjectNode tree && tree.has(OptionsRequest.FIELD)) {
            options = tree.remove(OptionsRequest.FIELD);
            specJson = tree.toString();
        }
        ResolvedSpec spec = RunSpecCodec.parseResolved(specJson);
        requireFitsOnGpu(spec);
        ChosenOptions chosen = OptionsRequest.parse(options, spec);
        corpora.check(caller, spec.data());
        UUID id = UUID.randomUUID();
        String runId = id.toString();
        catalogue.createRun(id, caller.user(), spec, SlopeRunWorkflow.workflowId(runId), chosen,
                c -> quotas.admit(c, caller.user(), Demand.run(chosen.resolve().ranks())));
        try {
            workflows.start(runId, caller.user(), spec.toRunSpec(), chosen.resolve(), null, Map.of());
        } catch (RuntimeException e) {
            LOG.warn("run {} is stored QUEUED but its workflow could not be started now ({}); the reconciler will "
                    + "start it", runId, e.toString());
        }
        return detail(caller, id);
    }

    public RunPage list(Caller caller, RunStatus status, String cursor, int limit) throws SQLException {
        PageStart after = cursor == null || cursor.isBlank() ? null : decodeCursor(cursor);
        // One more than asked: whether there is a next page without a COUNT.
        List<RunRow> rows = catalogue.page(caller.admin() ? null : caller.user(), status, after, limit + 1);
        boolean more = rows.size() > limit;
        List<RunSummary> items = rows.stream().limit(limit).map(RunService::summary).toList();
        String next = more ? encodeCursor(rows.get(limit - 1)) : null;
        return new RunPage(items, next);
    }

    public RunDetail detail(Caller caller, UUID id) throws SQLException {
        RunRow run = visible(caller, id);
        Optional<RunPageReads.Speed> speed = run.status() == RunStatus.RUNNING ? page.recentSpeed(id)
                : Optional.empty();
        Double tokensPerSecond = speed.map(RunPageReads.Speed::tokensPerSecond).orElse(null);
        Long eta = speed.filter(s -> s.stepsPerSecond() > 0)
                .map(s -> (long) Math.ceil(Math.max(0, run.totalSteps() - run.stepsDone()) / s.stepsPerSecond()))
                .orElse(null);
        List<CheckpointView> checkpoints = catalogue.checkpoints(id).stream().map(CheckpointView::of).toList();
        CheckpointView last = null;
        if (run.latestStep() >= 0) {
            last = checkpoints.stream().filter(c -> c.step() == run.latestStep()).findFirst()
                    .orElse(new CheckpointView(run.latestStep(), run.latestCheckpointKey(), null, 0, false, null));
        }
        return new RunDetail(id.toString(), run.name(), run.owner(), run.status(), run.stage(), run.stepsDone(),
                run.totalSteps(), tokensPerSecond, eta, last,
                page.newestEvals(id, EVALS_SHOWN).stream().map(EvalResult::of).toList(), run.error(),
                timeline(run, page.stageCompletions(id)), checkpoints,
                page.events(id, EVENTS_SHOWN).stream().map(EventView::of).toList(),
                specAsMap(run.specJson()), run.workflowId(), workflows.uiUrl(id.toString()), run.createdAt(),
                run.startedAt(), run.finishedAt(), optionsView(run.options()),
                storedSpec(run).map(this::gpuMemory).orElse(null), links(id.toString()));
    }

    public Metrics metrics(Caller caller, UUID id, int afterStep, int limit) throws SQLException {
        RunRow run = visible(caller, id);
        // Evaluations from afterStep itself: one of the last step a client saw may be recorded after its sample.
        return new Metrics(id.toString(), run.status(), run.totalSteps(),
                page.samples(id, afterStep, limit).stream().map(Sample::of).toList(),
                page.evals(id, afterStep, limit).stream().map(EvalResult::of).toList());
    }

    public RunDetail cancel(Caller caller, UUID id) throws SQLException {
        RunRow run = visible(caller, id);
        requireUnfinished(run, "cancel");
        workflows.cancel(id.toString());
        return detail(caller, id);
    }

    public RunDetail pause(Caller caller, UUID id) throws SQLException {
        RunRow run = visible(caller, id);
        requireUnfinished(run, "pause");
        if (run.status() == RunStatus.PAUSED) {
            throw ProblemException.conflict("illegal-state", "run " + id + " is already paused; resume it first");
        }
        workflows.pause(id.toString());
        return detail(caller, id);
    }

    public RunDetail resume(Caller caller, UUID id) throws SQLException {
        RunRow run = visible(caller, id);
        requireUnfinished(run, "resume");
        workflows.resume(id.toString());
        return detail(caller, id);
    }

    /**
     * Changes the data-parallel ranks of an unfinished run: checked against its spec (a 400 naming {@code ranks}),
     * sent to its workflow as the setRanks Update, and stored once the workflow has accepted it, so a reconcile or a
     * retry starts it again with them. The chunk running now keeps its ranks.
     */
    public RunDetail setRanks(Caller caller, UUID id, String body) throws SQLException {
        JsonNode ranks = readObject(body) instanceof ObjectNode tree ? tree.get("ranks") : null;
        if (ranks == null || !ranks.isIntegralNumber() || !ranks.canConvertToInt()) {
            throw ProblemException.badField("ranks", "required, a whole number: the body must be {\"ranks\": N}, N "
                    + "from 1 to " + RunOptions.MAX_RANKS + " dividing the run's training.gradAccum");
        }
        RunRow run = visible(caller, id);
        // A stored spec that no longer validates leaves the check to the workflow's validator.
        String problem = storedSpec(run).map(spec -> OptionsRequest.ranksProblem(ranks.intValue(), spec))
                .orElse(null);
        if (problem != null) {
            throw ProblemException.badField("ranks", problem);
        }
        requireUnfinished(run, "set ranks of");
        // Checked before the workflow is told: its accepting is what makes the change.
        quotas.check(run.owner(), Demand.ranks(ranks.intValue() - run.options().resolve().ranks()));
        workflows.setRanks(id.toString(), ranks.intValue());
        if (!catalogue.updateRanks(id, ranks.intValue())) {
            throw ProblemException.notFound("run " + id);
        }
        return detail(caller, id);
    }

    /**
     * Starts a finished run again from {@code fromStage}: the stages before it are not run, their stored results go
     * to the new workflow run as input.
     */
    public RunDetail retry(Caller caller, UUID id, String fromStage) throws SQLException {
        Stage from = parseStage(fromStage);
        RunRow run = visible(caller, id);
        if (!run.status().finished()) {
            throw ProblemException.conflict("illegal-state", "run " + id + " is " + run.status() + "; only a "
                    + "finished run (SUCCEEDED, FAILED, CANCELLED) can be retried: cancel it first");
        }
        Map<Stage, StageResult> stored = catalogue.stageResults(id);
        Map<Stage, StageResult> earlier = new EnumMap<>(Stage.class);
        for (Stage s : Stage.values()) {
            if (s.ordinal() >= from.ordinal()) {
                break;
            }
            StageResult result = stored.get(s);
            if (result == null) {
                throw new ProblemException(HttpStatus.CONFLICT, "stage-not-completed", "fromStage: stage "
                        + s.wireName() + " of run " + id + " has not completed, so the run cannot start at "
                        + from.wireName() + "; retry from " + s.wireName() + " or earlier",
                        List.of(new Problem.FieldProblem("fromStage", "stage " + s.wireName()
                                + " has no stored result; retry from " + s.wireName() + " or earlier")));
            }
            earlier.put(s, result);
        }
        if (!catalogue.requeue(id, from, c -> quotas.admit(c, run.owner(),
                Demand.run(run.options().resolve().ranks())))) {
            visible(caller, id); // a 404 when a delete won
            throw ProblemException.conflict("illegal-state", "run " + id + " was started again meanwhile");
        }
        // As stored: the workflow resolves it, and fails the run with the errors of one that no longer validates.
        RunSpec spec = RunSpecCodec.parse(run.specJson());
        try {
            workflows.start(id.toString(), run.owner(), spec, run.options().resolve(), from, earlier);
        } catch (RuntimeException e) {
            // Unlike a new run's, a retry's start is not the reconciler's to redo (it would start from the first
            // stage without a result, not from fromStage): the run goes back to how it was, and the caller retries.
            LOG.warn("retry of run {} from {}: its workflow could not be started ({})", id, from.wireName(),
                    e.toString());
            catalogue.restoreFinished(run, "retry from stage " + from.wireName() + " not started: Temporal did not "
                    + "take the workflow (" + e.getMessage() + ")");
            throw ProblemException.unavailable("the retry of run " + id + " could not start its workflow "
                    + "(Temporal unreachable?); the run is left " + run.status() + " as it was: try again");
        }
        return detail(caller, id);
    }

    /**
     * Deletes a finished run: its objects (checkpoints, exports), then its rows, so nothing is orphaned; the run's
     * row stays locked meanwhile, so a racing retry cannot start it again (it gets a 404).
     */
    public void delete(Caller caller, UUID id) throws SQLException, IOException {
        RunRow run = visible(caller, id);
        if (!run.status().finished()) {
            throw ProblemException.conflict("illegal-state", "run " + id + " is " + run.status() + "; cancel it "
                    + "first, then delete it");
        }
        List<RunCatalogue.Artifact> artifacts = catalogue.artifacts(id);
        boolean deleted = catalogue.deleteFinished(id, () -> {
            for (RunCatalogue.Artifact artifact : artifacts) {
                storage.objects().delete(artifact.objectKey());
            }
            for (String key : storage.objects().list("runs/" + id + "/")) {
                storage.objects().delete(key);
            }
        });
        if (!deleted) {
            visible(caller, id); // a 404 when another delete won
            throw ProblemException.conflict("illegal-state", "run " + id + " was started again meanwhile (a retry); "
                    + "cancel it first, then delete it");
        }
    }

    public Artifacts artifacts(Caller caller, UUID id) throws SQLException, IOException {
        visible(caller, id);
        List<Artifact> items = new ArrayList<>();
        for (RunCatalogue.Artifact row : catalogue.artifacts(id)) {
            Storage.SignedUrl signed = storage.presignGet(row.objectKey());
            items.add(new Artifact(row.path(), row.kind(), row.bytes(), row.sha256(), signed.url(),
                    signed.expiresAt()));
        }
        return new Artifacts(id.toString(), items);
    }

    /**
     * A {@code cuda} run whose estimated peak is more than a GPU of the service has would fail at its first step or
     * its final evaluation, after 20 retries: a 400 now, naming the field to change, the estimate and the setting.
     */
    private void requireFitsOnGpu(ResolvedSpec spec) {
        if (spec.backend() != BackendChoice.CUDA) {
            return;
        }
        int vocab = RunSpecs.vocabularyBeforeData(spec);
        RunSpecs.validateForGpu(spec, vocab, gpu.memoryBytes()).ifPresent(error -> {
            throw new ProblemException(HttpStatus.BAD_REQUEST, "gpu-memory-exceeded", error.toString(),
                    List.of(new Problem.FieldProblem(error.field(), error.message())),
                    new Problem.Limit("SLOPE_GPU_MEMORY_BYTES", gpu.memoryBytes(),
                            GpuMemoryEstimate.training(spec, vocab).totalBytes()));
        });
    }

    /** A {@code cuda} run's estimate, from its stored spec, against the GPUs as configured; null for other backends. */
    private RunViews.GpuMemoryView gpuMemory(ResolvedSpec spec) {
        if (spec.backend() != BackendChoice.CUDA) {
            return null;
        }
        GpuMemoryEstimate estimate = GpuMemoryEstimate.training(spec, RunSpecs.vocabularyBeforeData(spec));
        return new RunViews.GpuMemoryView(estimate.totalBytes(), gpu.memoryBytes(), estimate.toString());
    }

    /**
     * The run's spec as stored, resolved: empty for one that no longer validates (stored before a rule it breaks was
     * added), which only the workflow refuses.
     */
    private static Optional<ResolvedSpec> storedSpec(RunRow run) {
        try {
            return Optional.of(RunSpecCodec.parseResolved(run.specJson()));
        } catch (InvalidSpecException e) {
            return Optional.empty();
        }
    }

    private RunRow visible(Caller caller, UUID id) throws SQLException {
        return catalogue.run(id).filter(run -> caller.mayAccess(run.owner()))
                .orElseThrow(() -> ProblemException.notFound("run " + id));
    }

    private static void requireUnfinished(RunRow run, String action) {
        if (run.status().finished()) {
            throw ProblemException.conflict("illegal-state", "run " + run.id() + " has finished (" + run.status()
                    + "); there is nothing to " + action + (action.equals("cancel") ? "" : ", retry it instead"));
        }
    }

    static Stage parseStage(String fromStage) {
        if (fromStage == null || fromStage.isBlank()) {
            throw ProblemException.badField("fromStage", "required; one of " + Stage.wireNames());
        }
        try {
            return Stage.fromWire(fromStage);
        } catch (IllegalArgumentException e) {
            throw ProblemException.badField("fromStage", "unknown stage '" + fromStage + "'; one of "
                    + Stage.wireNames());
        }
    }

    /** Every stage with its state: done (a stored result), the current one, or pending. */
    private static List<StageView> timeline(RunRow run, Map<String, Instant> completions) {
        List<StageView> stages = new ArrayList<>();
        for (String stage : Stage.wireNames()) {
            Instant done = completions.get(stage);
            String state;
            if (stage.equals(run.stage()) && !(done != null && run.status() == RunStatus.SUCCEEDED)) {
                state = switch (run.status()) {
                    case RUNNING, QUEUED -> done != null ? "done" : "running";
                    case PAUSED -> "paused";
                    case FAILED -> "failed";
                    case CANCELLED -> "cancelled";
                    case SUCCEEDED -> "done";
                };
            } else {
                state = done != null ? "done" : "pending";
            }
            stages.add(new StageView(stage, state, done));
        }
        return stages;
    }

    private static RunViews.RunOptionsView optionsView(ChosenOptions chosen) {
        RunOptions options = chosen.resolve();
        return new RunViews.RunOptionsView(options.ranks(), options.chunkSteps(), options.keepLastCheckpoints());
    }

    /** The body as a JSON tree, or null when it is not JSON (the spec codec then says what is wrong with it). */
    private static JsonNode readObject(String body) {
        try {
            return body == null ? null : STRICT_JSON.readTree(body);
        } catch (JsonProcessingException e) {
            return null;
        }
    }

    private static Map<String, Object> specAsMap(String json) {
        try {
            return JSON.readValue(json, new TypeReference<>() {});
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("runs.spec holds invalid JSON", e);
        }
    }

    static RunSummary summary(RunRow run) {
        return new RunSummary(run.id().toString(), run.name(), run.owner(), run.status(), run.stage(),
                run.stepsDone(), run.totalSteps(), run.createdAt(), run.finishedAt(), run.error(),
                links(run.id().toString()));
    }

    static Links links(String id) {
        return new Links("/api/v1/runs/" + id, "/api/v1/runs/" + id + "/metrics", "/api/v1/runs/" + id
                + "/artifacts", "/runs/" + id);
    }

    private static String encodeCursor(RunRow last) {
        Instant t = last.createdAt();
        String raw = t.getEpochSecond() + ":" + t.getNano() + ":" + last.id();
        return Base64.getUrlEncoder().withoutPadding().encodeToString(raw.getBytes(StandardCharsets.UTF_8));
    }

    /** The latest instant a cursor may name: Postgres's timestamptz stops in year 294276, Java's Instant later. */
    private static final long CURSOR_MAX_EPOCH_SECOND = Instant.parse("9999-12-31T23:59:59Z").getEpochSecond();

    private static PageStart decodeCursor(String cursor) {
        try {
            String[] parts = new String(Base64.getUrlDecoder().decode(cursor), StandardCharsets.UTF_8).split(":");
            if (parts.length != 3) {
                throw new IllegalArgumentException("three parts expected");
            }
            long seconds = Long.parseLong(parts[0]);
            long nanos = Long.parseLong(parts[1]);
            if (seconds < 0 || seconds > CURSOR_MAX_EPOCH_SECOND || nanos < 0 || nanos > 999_999_999) {
                throw new IllegalArgumentException("instant out of range");
            }
            return new PageStart(Instant.ofEpochSecond(seconds, nanos), UUID.fromString(parts[2]));
        } catch (IllegalArgumentException e) {
            throw ProblemException.badField("cursor", "not a cursor this API returned; pass the nextCursor of the "
                    + "previous page, or leave it out for the first page");
        }
    }
}
