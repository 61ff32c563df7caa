package io.slope.api.runs;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunPageReads;
import io.slope.catalogue.RunStatus;
import io.swagger.v3.oas.annotations.media.Schema;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/** What the runs endpoints return. */
public final class RunViews {
    private RunViews() {}

    /** A run in a list. */
    @Serdeable
    public record RunSummary(String id, String name, String owner, RunStatus status, @Nullable String stage,
            int stepsDone, int totalSteps, Instant createdAt, @Nullable Instant finishedAt, @Nullable String error,
            Links links) {}

    @Serdeable
    public record Links(String self, String metrics, String artifacts, String page) {}

    /** One page of runs, newest first; {@code nextCursor} fetches the next page (absent on the last). */
    @Serdeable
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record RunPage(List<RunSummary> items, @Nullable String nextCursor) {}

    /** Everything about one run. */
    @Serdeable
    public record RunDetail(
            String id,
            String name,
            String owner,
            RunStatus status,
            @Nullable String stage,
            int stepsDone,
            int totalSteps,
            @Nullable Double tokensPerSecond,
            @Nullable Long etaSeconds,
            @Nullable CheckpointView lastCheckpoint,
            List<EvalResult> evals,
            @Nullable String error,
            List<StageView> stages,
            List<CheckpointView> checkpoints,
            List<EventView> events,
            @Schema(type = "object", additionalProperties = Schema.AdditionalPropertiesValue.TRUE,
                    description = "the resolved run spec (docs/spec.md)") Map<String, Object> spec,
            String workflowId,
            @Nullable String temporalUiUrl,
            Instant createdAt,
            @Nullable Instant startedAt,
            @Nullable Instant finishedAt,
            RunOptionsView options,
            @Nullable GpuMemoryView gpuMemory,
            Links links) {}

    /**
     * A {@code cuda} run's estimated peak GPU memory (docs/spec.md, "Memory on the GPU"; a char-level run's vocabulary
     * taken as 1,024 characters) against the memory of the service's GPUs ({@code SLOPE_GPU_MEMORY_BYTES}) as now
     * configured; {@code estimate} is the estimate with its parts, in GiB.
     */
    @Serdeable
    public record GpuMemoryView(long estimateBytes, long limitBytes, String estimate) {}

    /**
     * How the run is driven (the ones it chose on submit, or later by {@code POST /runs/{id}/ranks}; the service's
     * defaults for the rest): data-parallel ranks per training chunk, optimizer steps per chunk at most, committed
     * checkpoints kept besides the best and pinned ones.
     */
    @Serdeable
    public record RunOptionsView(int ranks, int chunkSteps, int keepLastCheckpoints) {}

    /**
     * The body of {@code POST /runs} as documented: a run spec (its fields free-form here; docs/spec.md and the spec
     * codec's 400s say what they may be) and, beside them, the run's {@code options}.
     */
    @Serdeable
    @Schema(description = "a run spec (docs/spec.md) with, optionally, the run options beside its fields",
            additionalProperties = Schema.AdditionalPropertiesValue.TRUE)
    public record SubmitRequest(@Nullable SubmitOptions options) {}

    /** The options a submit may choose; {@link OptionsRequest} reads and checks them. */
    @Serdeable
    @Schema(description = "how the run is driven; each left out takes the service's default")
    public record SubmitOptions(
            @Nullable @Schema(minimum = "1", maximum = "64", description = "data-parallel ranks (GPU workers) "
                    + "training each chunk together; must divide training.gradAccum (default 1)") Integer ranks,
            @Nullable @Schema(minimum = "1", maximum = "1000000", description = "optimizer steps per training "
                    + "chunk at most, each chunk ending on a committed checkpoint (default 500)") Integer chunkSteps,
            @Nullable @Schema(minimum = "1", maximum = "1000", description = "committed checkpoints kept besides "
                    + "the best and the pinned ones (default 2)") Integer keepLastCheckpoints) {}

    /** The body of {@code POST /runs/{id}/ranks}. */
    @Serdeable
    public record RanksRequest(@Schema(minimum = "1", maximum = "64", requiredMode = Schema.RequiredMode.REQUIRED,
            description = "data-parallel ranks for the chunks that start from now on; must divide "
                    + "training.gradAccum") int ranks) {}

    /** A stage of the timeline: {@code pending}, {@code running}, {@code paused}, {@code done} or {@code failed}. */
    @Serdeable
    public record StageView(String stage, String state, @Nullable Instant completedAt) {}

    /** A committed checkpoint; {@code valLoss} absent while no validation loss is recorded at its step. */
    @Serdeable
    public record CheckpointView(long step, String key, @Nullable Double valLoss, long bytes, boolean pinned,
            @Nullable Instant committedAt) {
        static CheckpointView of(RunCatalogue.CheckpointRow row) {
            return new CheckpointView(row.step(), row.prefix(), row.valLoss(), row.bytes(), row.pinned(),
                    row.committedAt());
        }
    }

    @Serdeable
    public record EvalResult(int step, String name, double value) {
        static EvalResult of(RunPageReads.Eval eval) {
            return new EvalResult(eval.step(), eval.name(), eval.value());
        }
    }

    @Serdeable
    public record EventView(Instant at, String level, @Nullable String stage, String message) {
        static EventView of(RunPageReads.Event event) {
            return new EventView(event.at(), event.level(), event.stage(), event.message());
        }
    }

    /** One optimizer step of the loss curve. */
    @Serdeable
    public record Sample(int step, double loss, double lr, long tokens, double tokensPerSecond, Instant recordedAt) {
        static Sample of(RunPageReads.Sample sample) {
            return new Sample(sample.step(), sample.loss(), sample.lr(), sample.tokens(), sample.tokensPerSecond(),
                    sample.recordedAt());
        }
    }

    /**
     * The loss and learning-rate curves (steps after {@code afterStep}, at most {@code limit}) and the evaluations
     * (from step {@code afterStep} on, at most {@code limit}); poll with {@code afterStep} = the last step seen to get
     * only what is new (an evaluation at that step may come again).
     */
    @Serdeable
    public record Metrics(String runId, RunStatus status, int totalSteps, List<Sample> samples,
            List<EvalResult> evals) {}

    /** An exported file with a presigned URL that works without a token until {@code expiresAt}. */
    @Serdeable
    public record Artifact(String path, String kind, long bytes, String sha256, String url, Instant expiresAt) {}

    @Serdeable
    public record Artifacts(String runId, List<Artifact> items) {}
}
