package io.slope.engine.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Splits an index range over a fixed pool. Every kernel computes each output element on exactly one thread in a fixed
 * order, so how the range is split never changes a result (ADR 002).
 */
final class Parallel implements AutoCloseable {
    /** Below this much work (items × cost per item) a range runs on the calling thread. */
    private static final long INLINE_WORK = 1 << 15;

    @FunctionalInterface
    interface RangeBody {
        void run(int from, int to);
    }

    private final int threads;
    private final ExecutorService pool;

    Parallel(int threads) {
        this.threads = Math.max(1, threads);
        this.pool = this.threads == 1 ? null : Executors.newFixedThreadPool(this.threads - 1, r -> {
            Thread t = new Thread(r, "slope-cpu");
            t.setDaemon(true);
            return t;
        });
    }

    int threads() {
        return threads;
    }

    /** Runs body over [0, n) in up to {@code threads} contiguous pieces; {@code costPerItem} only decides inlining. */
    void forRange(int n, long costPerItem, RangeBody body) {
        if (pool == null || n < 2 || (long) n * costPerItem < INLINE_WORK) {
            if (n > 0) {
                body.run(0, n);
            }
            return;
        }
        int pieces = Math.min(threads, n);
        List<Future<?>> futures = new ArrayList<>(pieces - 1);
        for (int p = 1; p < pieces; p++) {
            int from = (int) ((long) n * p / pieces);
            int to = (int) ((long) n * (p + 1) / pieces);
            futures.add(pool.submit(() -> body.run(from, to)));
        }
        body.run(0, (int) ((long) n / pieces));
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for a CPU kernel", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) {
                    throw re;
                }
                throw new IllegalStateException(e.getCause());
            }
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
