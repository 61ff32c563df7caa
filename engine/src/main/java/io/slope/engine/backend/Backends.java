package io.slope.engine.backend;

import io.slope.engine.cpu.CpuBackend;
import io.slope.spec.RunSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Opens the backend a spec asks for: {@code cpu}, a provided one by name (e.g. {@code cuda}), or {@code auto}. */
public final class Backends {
    private Backends() {}

    public static Backend open(RunSpec resolved) {
        String wanted = resolved.backend();
        if (wanted.equals("cpu")) {
            return new CpuBackend(resolved.threads());
        }
        List<String> unavailable = new ArrayList<>();
        for (BackendProvider provider : ServiceLoader.load(BackendProvider.class)) {
            if (!wanted.equals("auto") && !wanted.equals(provider.name())) {
                continue;
            }
            var reason = provider.unavailableReason();
            if (reason.isEmpty()) {
                return provider.open(resolved);
            }
            unavailable.add(provider.name() + ": " + reason.get());
        }
        if (wanted.equals("auto")) {
            return new CpuBackend(resolved.threads());
        }
        throw new IllegalArgumentException("backend: \"" + wanted + "\" is not available"
                + (unavailable.isEmpty() ? " in this build (its module is not on the class path)"
                        : " (" + String.join("; ", unavailable) + ")")
                + "; use \"cpu\", or \"auto\" to take the best one available");
    }
}
