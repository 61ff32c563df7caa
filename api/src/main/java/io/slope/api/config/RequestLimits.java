package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.bind.annotation.Bindable;

/**
 * How large a request body may be, per route. A JSON body (a run spec, ranks) is held in memory whole, so it may be
 * at most {@code maxJsonBytes} ({@code SLOPE_API_MAX_JSON_BYTES}, default 1 MiB; a spec is a few KiB). Only the
 * corpus upload takes more, up to its own limit ({@link CorpusSettings#maxBytes()}); the server refuses any body
 * over {@link #maxBodyBytes} before a route sees it.
 */
@ConfigurationProperties("slope.api")
public record RequestLimits(@Bindable(defaultValue = "1048576") long maxJsonBytes) {
    /** Above the upload limit, so that an upload a little over it gets the upload's own 413, which says more. */
    private static final long MARGIN = 1L << 20;

    public RequestLimits {
        if (maxJsonBytes < 1024) {
            throw new IllegalArgumentException("slope.api.max-json-bytes (SLOPE_API_MAX_JSON_BYTES) must be at least "
                    + "1024, got " + maxJsonBytes);
        }
    }

    /** The most any request may send: the corpus upload's limit and a margin. */
    public static long maxBodyBytes(CorpusSettings corpus) {
        return corpus.maxBytes() + MARGIN;
    }
}
