package io.slope.api.corpora;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;
import java.time.Instant;

/**
 * An uploaded corpus: put {@code uri} in a spec's {@code data.corpus} (or {@code data.validation}, held out). {@code id}
 * is the content's SHA-256.
 */
@Serdeable
public record CorpusView(String id, String uri, long bytes, String sha256, @Nullable String filename,
        Instant createdAt) {}
