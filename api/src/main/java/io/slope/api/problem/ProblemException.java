package io.slope.api.problem;

import io.micronaut.http.HttpStatus;
import java.util.List;

/** A request the API refuses, with the status, a stable type slug, and what to do about it. */
public final class ProblemException extends RuntimeException {
    private final HttpStatus status;
    private final String slug;
    private final transient List<Problem.FieldProblem> errors;
    private final transient Problem.Limit limit;

    public ProblemException(HttpStatus status, String slug, String detail, List<Problem.FieldProblem> errors) {
        this(status, slug, detail, errors, null);
    }

    public ProblemException(HttpStatus status, String slug, String detail, List<Problem.FieldProblem> errors,
            Problem.Limit limit) {
        super(detail);
        this.status = status;
        this.slug = slug;
        this.errors = List.copyOf(errors);
        this.limit = limit;
    }

    /** A 429: the caller holds {@code usage} of {@code limit}'s configured value already; {@code detail} says more. */
    public static ProblemException overLimit(Problem.Limit limit, String detail) {
        return new ProblemException(HttpStatus.TOO_MANY_REQUESTS, "limit-exceeded", detail, List.of(), limit);
    }

    public static ProblemException badField(String field, String message) {
        return new ProblemException(HttpStatus.BAD_REQUEST, "invalid-request", field + ": " + message,
                List.of(new Problem.FieldProblem(field, message)));
    }

    public static ProblemException notFound(String what) {
        return new ProblemException(HttpStatus.NOT_FOUND, "not-found", what + " does not exist", List.of());
    }

    public static ProblemException conflict(String slug, String detail) {
        return new ProblemException(HttpStatus.CONFLICT, slug, detail, List.of());
    }

    public static ProblemException unavailable(String detail) {
        return new ProblemException(HttpStatus.SERVICE_UNAVAILABLE, "unavailable", detail, List.of());
    }

    public HttpStatus status() {
        return status;
    }

    public String slug() {
        return slug;
    }

    public List<Problem.FieldProblem> errors() {
        return errors;
    }

    public Problem.Limit limit() {
        return limit;
    }
}
