package io.slope.api.web;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpMethod;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ServerFilter;
import io.slope.api.config.RequestLimits;
import io.slope.api.problem.Problem;
import io.slope.api.problem.Problems;
import java.util.List;

/**
 * Every route but the corpus upload takes at most {@link RequestLimits#maxJsonBytes()} of body: a larger declared
 * Content-Length is a 413 naming the limit, answered before the body is read. The server then discards the body
 * and keeps the connection: closing it with the body unread resets it, and a client still sending (Java's HttpClient
 * did, one time in eight) loses the answer. (A chunked body has no length up front; the server's buffer limit bounds
 * it.)
 */
@ServerFilter(ServerFilter.MATCH_ALL_PATTERN)
public final class JsonBodyLimit {
    private static final String UPLOAD_PATH = "/api/v1/datasets";

    private final RequestLimits limits;

    public JsonBodyLimit(RequestLimits limits) {
        this.limits = limits;
    }

    @RequestFilter
    @Nullable
    public HttpResponse<?> check(HttpRequest<?> request) {
        long length = request.getContentLength();
        if (length <= limits.maxJsonBytes()
                || request.getMethod() == HttpMethod.POST && request.getPath().equals(UPLOAD_PATH)) {
            return null;
        }
        return Problems.response(HttpStatus.REQUEST_ENTITY_TOO_LARGE, "request-too-large", "the request body is "
                + length + " bytes; this route takes at most " + limits.maxJsonBytes() + " (SLOPE_API_MAX_JSON_BYTES):"
                + " a run spec is a few KiB, and only POST " + UPLOAD_PATH + " takes files", List.of(),
                new Problem.Limit("SLOPE_API_MAX_JSON_BYTES", limits.maxJsonBytes(), length), request);
    }
}
