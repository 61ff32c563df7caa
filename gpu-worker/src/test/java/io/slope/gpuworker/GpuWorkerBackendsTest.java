package io.slope.gpuworker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.BackendProvider;
import io.slope.engine.backend.Backends;
import java.util.List;
import java.util.ServiceLoader;
import org.junit.jupiter.api.Test;

/** The worker's class path (what its image runs) carries the CUDA backend, and the worker can say whether it runs. */
class GpuWorkerBackendsTest {
    @Test
    void theWorkerClassPathOffersTheCudaBackend() {
        List<String> provided = ServiceLoader.load(BackendProvider.class).stream().map(p -> p.get().name()).toList();
        assertEquals(List.of("cuda"), provided);
    }

    @Test
    void availabilityNamesEachBackendAndWhyOneCannotRun() {
        List<String> lines = Backends.availability();
        assertEquals(List.of("cuda", "cpu"), lines.stream().map(l -> l.substring(0, l.indexOf(':'))).toList());
        assertEquals("cpu: available", lines.getLast());
        String cuda = lines.getFirst();
        assertTrue(cuda.equals("cuda: available") || cuda.startsWith("cuda: unavailable (") && cuda.endsWith(")"),
                cuda);
    }
}
