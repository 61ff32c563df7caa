package io.slope.api.config;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.bind.annotation.Bindable;
import java.nio.file.Path;
import java.util.List;

/**
 * Corpus uploads ({@code POST /api/v1/datasets}): the largest accepted, in bytes ({@code SLOPE_CORPUS_MAX_BYTES},
 * default 1 GiB; at most 5 GiB, the largest object S3 copies in one request). {@code allowLocalPaths}: whether a spec may
 * name an absolute path as its corpus, which only makes sense when the workers share the API's machine ({@code slope
 * up}); off in compose. Such a path must be a file under one of {@code localRoots} ({@code SLOPE_CORPUS_LOCAL_ROOTS},
 * comma-separated; default the API's working directory), so a spec cannot have the workers read {@code /proc} or
 * another user's files. {@code maxConcurrentUploads} ({@code SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS}, default 2): the
 * uploads one user may have in flight at once, each holding a request thread and an 8 MiB part buffer.
 */
@ConfigurationProperties("slope.corpus")
public record CorpusSettings(@Bindable(defaultValue = "1073741824") long maxBytes,
        @Bindable(defaultValue = "false") boolean allowLocalPaths, @Nullable List<String> localRoots,
        @Bindable(defaultValue = "2") int maxConcurrentUploads) {
    public static final long S3_SINGLE_COPY_LIMIT = 5L << 30;

    public CorpusSettings {
        if (maxBytes < 1 || maxBytes > S3_SINGLE_COPY_LIMIT) {
            throw new IllegalArgumentException("slope.corpus.max-bytes (SLOPE_CORPUS_MAX_BYTES) must be between 1 "
                    + "and " + S3_SINGLE_COPY_LIMIT + " (5 GiB), got " + maxBytes);
        }
        if (maxConcurrentUploads < 1) {
            throw new IllegalArgumentException("slope.corpus.max-concurrent-uploads "
                    + "(SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS) must be at least 1, got " + maxConcurrentUploads);
        }
        localRoots = localRoots == null || localRoots.isEmpty() ? List.of(System.getProperty("user.dir"))
                : List.copyOf(localRoots);
        for (String root : localRoots) {
            Path path = Path.of(root);
            if (!path.isAbsolute() || path.getNameCount() == 0) {
                throw new IllegalArgumentException("slope.corpus.local-roots (SLOPE_CORPUS_LOCAL_ROOTS) must be "
                        + "absolute directories other than the file system's root, got '" + root + "'");
            }
        }
    }
}
