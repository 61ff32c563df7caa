package io.slope.engine.backend;

import io.slope.spec.RunSpec;
import java.util.Optional;

/**
 * A backend that lives in another module (the CUDA one), found through {@link java.util.ServiceLoader} so that nothing
 * else carries its native dependencies.
 */
public interface BackendProvider {
    /** The spec's {@code backend} value that selects it, e.g. "cuda". */
    String name();

    /** Empty when this machine can run the backend; otherwise what is missing and how to fix it. */
    Optional<String> unavailableReason();

    Backend open(RunSpec resolved);
}
