package io.slope.api.problem;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;
import java.util.List;

/**
 * An RFC 9457 problem document: every error the API returns, as {@code application/problem+json}. {@code errors}
 * names each field that was wrong and what to do about it; {@code limit}, on a refusal for a limit (413, 429, and
 * the 400 of a run too large for the service's GPUs), which one it was, as the operator configures it, its value and
 * the caller's usage.
 */
@Serdeable
@JsonInclude(JsonInclude.Include.NON_EMPTY)
public record Problem(String type, String title, int status, @Nullable String detail, @Nullable String instance,
        @Nullable List<FieldProblem> errors, @Nullable Limit limit) {
    public static final String MEDIA_TYPE = "application/problem+json";

    /** One wrong field: its path (e.g. {@code training.steps}, {@code limit}) and the message. */
    @Serdeable
    public record FieldProblem(String field, String message) {}

    /**
     * A limit the request ran into: its setting's name ({@code SLOPE_QUOTA_MAX_ACTIVE_RUNS}, ...), the configured
     * value, and the caller's usage (what they hold now, or the request's size; null where it is not known).
     */
    @Serdeable
    public record Limit(String name, long configured, @Nullable Long usage) {}
}
