package io.slope.engine.backend;

import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.parallel.TcpCollective;
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

    /** The backend a run that selects this provider trains on. */
    Backend open();

    /**
     * A second backend on the same device that computes in fp32, for the stage evaluations (docs/spec.md: validation
     * loss is computed in fp32), when the one {@link #open} opens trains in a lower precision (the GPU's bf16 GEMMs);
     * empty when that one computes in fp32 itself. The caller closes it.
     */
    default Optional<Backend> openFp32Evaluation() {
        return Optional.empty();
    }

    /**
     * How the ranks of a run on this backend find each other, known before the backend is opened (a rank joins its
     * group first, then opens the session): what {@link Backend#collectives()} of the opened backend returns.
     */
    default CollectiveProvider collectives() {
        return TcpCollective.PROVIDER;
    }
}
