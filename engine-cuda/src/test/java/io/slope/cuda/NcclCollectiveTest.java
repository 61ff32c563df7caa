package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveException;
import io.slope.engine.parallel.CollectiveProvider;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The NCCL collective (ADR 041) on real GPUs: a one-rank group on one GPU, and two ranks as two threads on GPUs 0 and
 * 1. Skipped without a GPU and libnccl.so.2; the two-rank tests also without a second GPU.
 */
class NcclCollectiveTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    @Test
    void theLibraryIsRecentEnough() {
        GpuBackends.withNccl();
        int version = Nccl.get().version();
        System.out.println("NCCL version code " + version);
        assertTrue(version >= 22100, "NCCL 2.21 or later is needed, found version code " + version);
    }

    @Test
    void oneRankIsTheIdentityOnHostArraysAndDeviceTensors() throws Exception {
        GpuBackends.withNccl();
        CudaBackend backend = GpuBackends.get(CudaBackend.Precision.FP32_DEBUG);
        try (Collective c = oneRank(backend)) {
            assertEquals(0, c.rank());
            assertEquals(1, c.worldSize());
            double[] x = {1.5, -2.0, 3e-300, 7};
            assertArrayEquals(x, c.allReduceSum(x.clone()));
            assertArrayEquals(x, c.broadcast(x.clone(), 0));
            assertArrayEquals(new double[0], c.allReduceSum(new double[0]));

            Tensor f = backend.zeros(DType.F32, 3, 5);
            Tensor h = backend.zeros(DType.BF16, 7);
            double[] fv = ramp(15, 0.25);
            double[] hv = ramp(7, 1.0);
            backend.upload(f, fv);
            backend.upload(h, hv);
            c.allReduceSum(backend, List.of(f, h));
            assertArrayEquals(fv, backend.download(f));
            assertArrayEquals(hv, backend.download(h));
            c.broadcast(backend, List.of(f, h), new int[] {0, 0});
            assertArrayEquals(fv, backend.download(f));
            assertArrayEquals(hv, backend.download(h));
        }
    }

    @Test
    void afterAbortEveryOperationThrowsNamingTheReason() throws Exception {
        GpuBackends.withNccl();
        CudaBackend backend = GpuBackends.get(CudaBackend.Precision.FP32_DEBUG);
        try (Collective c = oneRank(backend)) {
            c.abort("the workflow cancelled the chunk");
            CollectiveException host = assertThrows(CollectiveException.class, () -> c.allReduceSum(new double[] {1}));
            assertTrue(host.getMessage().contains("the workflow cancelled the chunk"), host.getMessage());
            Tensor t = backend.zeros(DType.F32, 4);
            CollectiveException device = assertThrows(CollectiveException.class,
                    () -> c.allReduceSum(backend, List.of(t)));
            assertTrue(device.getMessage().contains("the workflow cancelled the chunk"), device.getMessage());
            assertThrows(CollectiveException.class, () -> c.broadcast(new double[] {1}, 0));
        }
    }

    @Test
    void theUniqueIdIsPrefixedBase64OfOneHundredTwentyEightBytes() throws Exception {
        GpuBackends.withNccl();
        try (CollectiveProvider.Rendezvous r = NcclCollective.provider(0).listen(1, TIMEOUT)) {
            String id = r.uniqueId();
            assertTrue(id.startsWith("nccl:"), id);
            assertEquals(128, NcclCollective.parseId(id).length);
        }
    }

    @Test
    void twoRanksSumAndBroadcastHostArraysAndDeviceTensors() throws Exception {
        GpuBackends.withTwoGpus();
        TwoRanks.run(CudaBackend.Precision.FP32_DEBUG, TIMEOUT, (rank, backend, c) -> {
            assertEquals(rank, c.rank());
            assertEquals(2, c.worldSize());
            assertArrayEquals(new double[] {3, 30, 0.5, 1e-300},
                    c.allReduceSum(new double[] {rank + 1, 10 * (rank + 1), 0.25, rank == 0 ? 1e-300 : 0}));
            double[] fromOne = c.broadcast(rank == 1 ? new double[] {7, 8, 9} : null, 1);
            assertArrayEquals(new double[] {7, 8, 9}, fromOne);

            // fp32 and bf16 tensors: small integers, exact in both, so the sums are exact.
            Tensor f = backend.zeros(DType.F32, 4, 8);
            Tensor h = backend.zeros(DType.BF16, 6);
            backend.upload(f, ramp(32, 1 + rank));
            backend.upload(h, ramp(6, 2 + rank));
            c.allReduceSum(backend, List.of(f, h));
            assertArrayEquals(ramp(32, 3), backend.download(f));
            assertArrayEquals(ramp(6, 5), backend.download(h));

            // tensor 0 from rank 1, tensor 1 from rank 0, in one group
            Tensor a = backend.zeros(DType.F32, 5);
            Tensor b = backend.zeros(DType.F32, 3);
            backend.upload(a, ramp(5, rank == 1 ? 11 : -1));
            backend.upload(b, ramp(3, rank == 0 ? 13 : -1));
            c.broadcast(backend, List.of(a, b), new int[] {1, 0});
            assertArrayEquals(ramp(5, 11), backend.download(a));
            assertArrayEquals(ramp(3, 13), backend.download(b));
            return null;
        });
    }

    @Test
    void anAbortFromAnotherThreadFailsThePendingOperationAtOnce() throws Exception {
        GpuBackends.withTwoGpus();
        CountDownLatch rankZeroFailed = new CountDownLatch(1);
        TwoRanks.run(CudaBackend.Precision.FP32_DEBUG, TIMEOUT, (rank, backend, c) -> {
            if (rank == 1) {
                // never joins the reduce: rank 0's operation stays pending until it is aborted
                assertTrue(rankZeroFailed.await(2, TimeUnit.MINUTES), "rank 0's operation ended");
                c.abort("test over");
                return null;
            }
            Thread aborter = Thread.ofPlatform().start(() -> {
                sleep(1000);
                c.abort("the heartbeat found the peer dead");
            });
            long start = System.nanoTime();
            Tensor t = backend.zeros(DType.F32, 1 << 20);
            CollectiveException e = assertThrows(CollectiveException.class,
                    () -> c.allReduceSum(backend, List.of(t)));
            double seconds = (System.nanoTime() - start) / 1e9;
            rankZeroFailed.countDown();
            aborter.join();
            assertTrue(e.getMessage().contains("the heartbeat found the peer dead"), e.getMessage());
            assertTrue(seconds < 30, "the abort ended the pending operation after " + seconds + " s, long before the "
                    + TIMEOUT.toSeconds() + " s timeout");
            assertThrows(CollectiveException.class, () -> c.allReduceSum(new double[] {1}));
            return null;
        });
    }

    @Test
    void aPeerThatAbortsFailsTheOtherRanksPendingOperationWithinTheTimeout() throws Exception {
        GpuBackends.withTwoGpus();
        Duration shortTimeout = Duration.ofSeconds(20);
        CountDownLatch peerAborted = new CountDownLatch(1);
        TwoRanks.run(CudaBackend.Precision.FP32_DEBUG, shortTimeout, (rank, backend, c) -> {
            if (rank == 1) {
                c.abort("rank 1 gave up");
                peerAborted.countDown();
                return null;
            }
            assertTrue(peerAborted.await(1, TimeUnit.MINUTES));
            long start = System.nanoTime();
            CollectiveException e = assertThrows(CollectiveException.class,
                    () -> c.allReduceSum(new double[] {1, 2, 3}));
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.println("rank 0's reduce failed after " + seconds + " s: " + e.getMessage());
            assertTrue(seconds < shortTimeout.toSeconds() + 30, "failed after " + seconds + " s");
            return null;
        });
    }

    private static Collective oneRank(CudaBackend backend) throws Exception {
        try (CollectiveProvider.Rendezvous r = backend.collectives().listen(1, TIMEOUT)) {
            return r.awaitPeers();
        }
    }

    private static double[] ramp(int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * (i % 17 - 5);
        }
        return v;
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
