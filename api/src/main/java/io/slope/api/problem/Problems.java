package io.slope.api.problem;

import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MutableHttpResponse;
import java.util.List;

/** Builds problem responses; the one place that knows the type URIs and the media type. */
public final class Problems {
    private static final String TYPE_PREFIX = "https://slope.dev/problems/";

    private Problems() {}

    public static Problem of(HttpStatus status, String slug, String detail, List<Problem.FieldProblem> errors,
            Problem.Limit limit, HttpRequest<?> request) {
        return new Problem(TYPE_PREFIX + slug, status.getReason(), status.getCode(), detail,
                request == null ? null : request.getPath(), errors, limit);
    }

    public static MutableHttpResponse<Problem> response(HttpStatus status, String slug, String detail,
            List<Problem.FieldProblem> errors, HttpRequest<?> request) {
        return response(status, slug, detail, errors, null, request);
    }

    public static MutableHttpResponse<Problem> response(HttpStatus status, String slug, String detail,
            List<Problem.FieldProblem> errors, Problem.Limit limit, HttpRequest<?> request) {
        return HttpResponse.<Problem>status(status).contentType(Problem.MEDIA_TYPE)
                .body(of(status, slug, detail, errors, limit, request));
    }

    /** A slug for a status the API did not refuse itself (the framework's 404, 405, 415, ...). */
    public static String slugOf(HttpStatus status) {
        return status.getReason().toLowerCase(java.util.Locale.ROOT).replaceAll("[^a-z0-9]+", "-")
                .replaceAll("(^-|-$)", "");
    }
}
