package io.slope.api.runs;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;
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
            Links links) {}

    /** A stage of the timeline: {@code pending}, {@code running}, {@code paused}, {@code done} or {@code failed}. */
    @Serdeable
    public record StageView(String stage, String state, @Nullable Instant completedAt) {}

    @Serdeable
    public record CheckpointView(long step, String key, @Nullable Double valLoss, long bytes, boolean pinned,
            @Nullable Instant committedAt) {}

    @Serdeable
    public record EvalResult(int step, String name, double value) {}

    @Serdeable
    public record EventView(Instant at, String level, @Nullable String stage, String message) {}

    /** One optimizer step of the loss curve. */
    @Serdeable
    public record Sample(int step, double loss, double lr, long tokens, double tokensPerSecond, Instant recordedAt) {}

    /**
     * The loss and learning-rate curves (steps after {@code afterStep}, at most {@code limit}) and the evaluations;
     * poll with {@code afterStep} = the last step seen to get only what is new.
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
