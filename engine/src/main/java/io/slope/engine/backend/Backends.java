package io.slope.engine.backend;

import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.parallel.TcpCollective;
import io.slope.spec.RunSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.ServiceLoader;

/** Opens the backend a spec asks for: {@code cpu}, a provided one by name (e.g. {@code cuda}), or {@code auto}. */
public final class Backends {
    private Backends() {}

    public static Backend open(RunSpec resolved) {
        return provider(resolved).map(p -> p.open(resolved)).orElseGet(() -> new CpuBackend(resolved.threads()));
    }

    /**
     * The rendezvous of the backend {@link #open} would open, without opening it: loopback TCP on the CPU, NCCL on
     * CUDA. A data-parallel rank joins its group with it before its session opens the backend.
     */
    public static CollectiveProvider collectives(RunSpec resolved) {
        return provider(resolved).map(BackendProvider::collectives).orElse(TcpCollective.PROVIDER);
    }

    /** The provided backend the spec selects; empty for the CPU. */
    private static Optional<BackendProvider> provider(RunSpec resolved) {
        String wanted = resolved.backend();
        if (wanted.equals("cpu")) {
            return Optional.empty();
        }
        List<String> unavailable = new ArrayList<>();
        for (BackendProvider provider : ServiceLoader.load(BackendProvider.class)) {
            if (!wanted.equals("auto") && !wanted.equals(provider.name())) {
                continue;
            }
            var reason = provider.unavailableReason();
            if (reason.isEmpty()) {
                return Optional.of(provider);
            }
            unavailable.add(provider.name() + ": " + reason.get());
        }
        if (wanted.equals("auto")) {
            return Optional.empty();
        }
        throw new IllegalArgumentException("backend: \"" + wanted + "\" is not available"
                + (unavailable.isEmpty() ? " in this build (its module is not on the class path)"
                        : " (" + String.join("; ", unavailable) + ")")
                + "; use \"cpu\", or \"auto\" to take the best one available");
    }
}
