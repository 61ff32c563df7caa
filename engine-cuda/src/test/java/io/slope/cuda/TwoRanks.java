package io.slope.cuda;

import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveProvider;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Two NCCL ranks as two threads of this JVM, rank r on GPU r with its own backend: rank 0 listens and hands the id to
 * rank 1, as the workflow does between processes. Each rank's whole body runs on its own thread (the CUDA context is
 * current per thread). A rank that fails makes {@link #run} throw its failure.
 */
final class TwoRanks {
    /** One rank's work. */
    @FunctionalInterface
    interface Body<T> {
        T run(int rank, CudaBackend backend, Collective collective) throws Exception;
    }

    private TwoRanks() {}

    static <T> List<T> run(CudaBackend.Precision precision, Duration timeout, Body<T> body) throws Exception {
        CompletableFuture<String> id = new CompletableFuture<>();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (CudaBackend backend = new CudaBackend(rank, precision)) {
                        CollectiveProvider provider = backend.collectives();
                        Collective c;
                        if (rank == 0) {
                            try (CollectiveProvider.Rendezvous host = provider.listen(2, timeout)) {
                                id.complete(host.uniqueId());
                                c = host.awaitPeers();
                            } catch (Exception e) {
                                id.completeExceptionally(e);
                                throw e;
                            }
                        } else {
                            c = provider.join(id.get(timeout.toSeconds(), TimeUnit.SECONDS), 1, 2, timeout);
                        }
                        try (Collective collective = c) {
                            return body.run(rank, backend, collective);
                        }
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    out.add(f.get(10, TimeUnit.MINUTES));
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof Exception x) {
                        throw x;
                    }
                    throw e;
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
        }
    }
}
