package io.slope.api.problem;

import io.micronaut.context.annotation.Replaces;
import io.micronaut.context.annotation.Requires;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import io.micronaut.http.server.exceptions.response.ErrorContext;
import io.micronaut.http.server.exceptions.response.ErrorResponseProcessor;
import io.micronaut.validation.exceptions.ConstraintExceptionHandler;
import io.slope.api.config.ServerLimits;
import io.slope.spec.InvalidSpecException;
import jakarta.inject.Singleton;
import jakarta.validation.ConstraintViolation;
import jakarta.validation.ConstraintViolationException;
import jakarta.validation.ElementKind;
import jakarta.validation.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Every error as problem+json: the API's own refusals, spec errors, constraint violations and the framework's. */
public final class ProblemHandlers {
    private static final Logger LOG = LoggerFactory.getLogger(ProblemHandlers.class);

    private ProblemHandlers() {}

    @Singleton
    @Produces(Problem.MEDIA_TYPE)
    public static final class Refusals implements ExceptionHandler<ProblemException, HttpResponse<Problem>> {
        @Override
        public HttpResponse<Problem> handle(HttpRequest request, ProblemException e) {
            MutableHttpResponse<Problem> response = Problems.response(e.status(), e.slug(), e.getMessage(),
                    e.errors(), e.limit(), request);
            if (e.status() == HttpStatus.REQUEST_ENTITY_TOO_LARGE) {
                // The body was refused unread: the connection cannot carry another request.
                response.header(io.micronaut.http.HttpHeaders.CONNECTION, "close");
            }
            return response;
        }
    }

    /** A spec the codec refused: 400 with every field it named. */
    @Singleton
    @Produces(Problem.MEDIA_TYPE)
    public static final class InvalidSpecs implements ExceptionHandler<InvalidSpecException, HttpResponse<Problem>> {
        @Override
        public HttpResponse<Problem> handle(HttpRequest request, InvalidSpecException e) {
            List<Problem.FieldProblem> errors = e.errors().stream()
                    .map(err -> new Problem.FieldProblem(err.field(), err.message())).toList();
            String detail = "the run spec is invalid: " + String.join("; ",
                    e.errors().stream().map(Object::toString).toList());
            return Problems.response(HttpStatus.BAD_REQUEST, "invalid-spec", detail, errors, request);
        }
    }

    /** Bean validation of parameters: the field is the parameter's (or property's) name, not the Java method's. */
    @Singleton
    @Produces(Problem.MEDIA_TYPE)
    @Replaces(ConstraintExceptionHandler.class)
    @Requires(classes = ConstraintViolationException.class)
    public static final class Constraints
            implements ExceptionHandler<ConstraintViolationException, HttpResponse<Problem>> {
        @Override
        public HttpResponse<Problem> handle(HttpRequest request, ConstraintViolationException e) {
            List<Problem.FieldProblem> errors = new ArrayList<>();
            for (ConstraintViolation<?> violation : e.getConstraintViolations()) {
                errors.add(new Problem.FieldProblem(field(violation.getPropertyPath()), violation.getMessage()));
            }
            errors.sort(Comparator.comparing(Problem.FieldProblem::field));
            String detail = String.join("; ", errors.stream().map(f -> f.field() + ": " + f.message()).toList());
            return Problems.response(HttpStatus.BAD_REQUEST, "invalid-request", detail, errors, request);
        }

        private static String field(Path path) {
            StringBuilder sb = new StringBuilder();
            for (Path.Node node : path) {
                if (node.getKind() == ElementKind.METHOD || node.getKind() == ElementKind.CONSTRUCTOR) {
                    continue;
                }
                if (!sb.isEmpty()) {
                    sb.append('.');
                }
                sb.append(node.getName());
            }
            return sb.isEmpty() ? path.toString() : sb.toString();
        }
    }

    /**
     * Whatever the framework itself answers with an error (unknown route 404, 405, 413, 415, unreadable body 400,
     * conversion errors, unexpected exceptions 500): problem+json, with the field where the framework knows it.
     */
    @Singleton
    @Replaces(ErrorResponseProcessor.class)
    public static final class Framework implements ErrorResponseProcessor<Problem> {
        private final ServerLimits limits;

        public Framework(ServerLimits limits) {
            this.limits = limits;
        }

        @Override
        public MutableHttpResponse<Problem> processResponse(ErrorContext context, MutableHttpResponse<?> base) {
            HttpStatus status = base.getStatus();
            if (status == HttpStatus.REQUEST_ENTITY_TOO_LARGE) {
                return base.contentType(Problem.MEDIA_TYPE).body(limits.tooLarge(context.getRequest(),
                        context.getRootCause().orElse(null)));
            }
            List<Problem.FieldProblem> errors = new ArrayList<>();
            List<String> messages = new ArrayList<>();
            for (var error : context.getErrors()) {
                messages.add(error.getMessage());
                // The framework writes paths as JSON pointers ("/body"); the API names fields plainly ("body").
                error.getPath().ifPresent(path -> errors.add(new Problem.FieldProblem(
                        path.startsWith("/") ? path.substring(1) : path, error.getMessage())));
            }
            String detail;
            if (status.getCode() >= 500) {
                // Never leak internals to the caller; the log has them.
                context.getRootCause().ifPresent(cause -> LOG.error("{} {} failed", context.getRequest().getMethod(),
                        context.getRequest().getPath(), cause));
                detail = "the server failed to handle this request; its log has the details";
            } else {
                detail = messages.isEmpty() ? status.getReason() : String.join("; ", messages);
            }
            Problem problem = Problems.of(status, Problems.slugOf(status), detail, errors, null,
                    context.getRequest());
            return base.contentType(Problem.MEDIA_TYPE).body(problem);
        }
    }
}
