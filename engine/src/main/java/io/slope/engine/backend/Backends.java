package io.slope.engine.backend;

import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.parallel.TcpCollective;
import io.slope.spec.BackendChoice;
import io.slope.spec.ResolvedSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.ServiceLoader;

/** Opens the backend a spec asks for: {@code cpu}, a provided one by name (e.g. {@code cuda}), or {@code auto}. */
public final class Backends {
    private Backends() {}

    public static Backend open(ResolvedSpec resolved) {
        return open(resolved.backend(), resolved.threads());
    }

    /**
     * The backend {@code wanted} for work outside a run (sampling a checkpoint), opened as {@link #open} opens a run's;
     * {@code threads} for the CPU (0: every core). Refuses an unavailable one, saying why.
     */
    public static Backend open(BackendChoice wanted, int threads) {
        return provider(wanted).map(BackendProvider::open).orElseGet(() -> new CpuBackend(threads));
    }

    /**
     * The fp32 evaluation backend of {@link BackendProvider#openFp32Evaluation} for the backend {@link #open} opens;
     * empty on the CPU, which computes in fp32 already.
     */
    public static Optional<Backend> openFp32Evaluation(ResolvedSpec resolved) {
        return provider(resolved.backend()).flatMap(BackendProvider::openFp32Evaluation);
    }

    /**
     * The rendezvous of the backend {@link #open} would open, without opening it: loopback TCP on the CPU, NCCL on
     * CUDA. A data-parallel rank joins its group with it before its session opens the backend.
     */
    public static CollectiveProvider collectives(ResolvedSpec resolved) {
        return provider(resolved.backend()).map(BackendProvider::collectives).orElse(TcpCollective.PROVIDER);
    }

    /**
     * Why {@link #open} would refuse the spec's backend, in its words; empty when it would open one. Nothing is opened,
     * so a launcher can check before it starts the processes that open it.
     */
    public static Optional<String> unavailableReason(ResolvedSpec resolved) {
        BackendChoice wanted = resolved.backend();
        List<String> unavailable = new ArrayList<>();
        if (wanted == BackendChoice.CPU || wanted == BackendChoice.AUTO || available(wanted, unavailable) != null) {
            return Optional.empty();
        }
        return Optional.of(unavailableMessage(wanted, unavailable));
    }

    /**
     * One line per backend this class path offers, the provided ones first: whether it can run on this machine and, if
     * not, why. A worker prints them at start, so an operator sees which backend its runs will get.
     */
    public static List<String> availability() {
        List<String> lines = new ArrayList<>();
        for (BackendProvider provider : ServiceLoader.load(BackendProvider.class)) {
            lines.add(provider.name() + ": " + provider.unavailableReason().map(r -> "unavailable (" + r + ")")
                    .orElse("available"));
        }
        lines.add("cpu: available");
        return lines;
    }

    /** The provided backend {@code wanted} selects; empty for the CPU (asked for, or what auto falls back to). */
    private static Optional<BackendProvider> provider(BackendChoice wanted) {
        if (wanted == BackendChoice.CPU) {
            return Optional.empty();
        }
        List<String> unavailable = new ArrayList<>();
        BackendProvider provider = available(wanted, unavailable);
        if (provider != null || wanted == BackendChoice.AUTO) {
            return Optional.ofNullable(provider);
        }
        throw new IllegalArgumentException(unavailableMessage(wanted, unavailable));
    }

    /**
     * The first provider that is {@code wanted} (any, for auto) and can run here, or null; why the others cannot is
     * added to {@code unavailable}.
     */
    private static BackendProvider available(BackendChoice wanted, List<String> unavailable) {
        for (BackendProvider provider : ServiceLoader.load(BackendProvider.class)) {
            if (wanted != BackendChoice.AUTO && !wanted.wireName().equals(provider.name())) {
                continue;
            }
            var reason = provider.unavailableReason();
            if (reason.isEmpty()) {
                return provider;
            }
            unavailable.add(provider.name() + ": " + reason.get());
        }
        return null;
    }

    private static String unavailableMessage(BackendChoice wanted, List<String> unavailable) {
        return "backend: \"" + wanted.wireName() + "\" is not available"
                + (unavailable.isEmpty() ? " in this build (its module is not on the class path)"
                        : " (" + String.join("; ", unavailable) + ")")
                + "; use \"cpu\", or \"auto\" to take the best one available";
    }
}
