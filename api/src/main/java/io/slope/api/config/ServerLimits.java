package io.slope.api.config;

import io.micronaut.context.event.BeanCreatedEvent;
import io.micronaut.context.event.BeanCreatedEventListener;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.exceptions.BufferLengthExceededException;
import io.micronaut.http.server.HttpServerConfiguration;
import io.slope.api.problem.Problem;
import io.slope.api.problem.Problems;
import jakarta.inject.Singleton;
import java.util.List;

/**
 * Gives the server its largest body from {@link CorpusSettings} (the upload's limit and a margin), so the operator sets
 * it once, and says which limit a body the server refused ran into; JSON routes are held to their smaller limit by
 * {@link io.slope.api.web.JsonBodyLimit}.
 */
@Singleton
public final class ServerLimits implements BeanCreatedEventListener<HttpServerConfiguration> {
    private final RequestLimits limits;
    private final CorpusSettings corpus;
    private volatile long bufferBytes = HttpServerConfiguration.DEFAULT_MAX_REQUEST_BUFFER_SIZE;

    ServerLimits(RequestLimits limits, CorpusSettings corpus) {
        this.limits = limits;
        this.corpus = corpus;
    }

    @Override
    public HttpServerConfiguration onCreated(BeanCreatedEvent<HttpServerConfiguration> event) {
        HttpServerConfiguration server = event.getBean();
        server.setMaxRequestSize(RequestLimits.maxBodyBytes(corpus));
        bufferBytes = server.getMaxRequestBufferSize();
        return server;
    }

    /**
     * The server's own 413: a body over the largest any route takes, or more of one request's body than the server
     * holds unread ({@code cause} says which); names the limit, so the caller knows what to send instead.
     */
    public Problem tooLarge(HttpRequest<?> request, Throwable cause) {
        long length = request.getContentLength();
        Long usage = length >= 0 ? length : null;
        Problem.Limit limit;
        String detail;
        if (cause instanceof BufferLengthExceededException) {
            limit = new Problem.Limit("MICRONAUT_SERVER_MAX_REQUEST_BUFFER_SIZE", bufferBytes, usage);
            detail = "the server holds at most " + bufferBytes + " bytes of a request's body "
                    + "(MICRONAUT_SERVER_MAX_REQUEST_BUFFER_SIZE); JSON requests may send " + limits.maxJsonBytes()
                    + " (SLOPE_API_MAX_JSON_BYTES)";
        } else {
            limit = new Problem.Limit("SLOPE_CORPUS_MAX_BYTES", corpus.maxBytes(), usage);
            detail = "the request body is larger than " + RequestLimits.maxBodyBytes(corpus) + " bytes, the most any "
                    + "request may send: the corpus upload's limit (SLOPE_CORPUS_MAX_BYTES) and 1 MiB";
        }
        return Problems.of(HttpStatus.REQUEST_ENTITY_TOO_LARGE, "request-too-large", detail, List.of(), limit,
                request);
    }
}
