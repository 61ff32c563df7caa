package io.slope.engine.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The loopback-TCP collective: rendezvous, rank-order sums, broadcast, and every way a peer can fail. */
class TcpCollectiveTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(5);
    private final ExecutorService pool = Executors.newCachedThreadPool();

    @AfterEach
    void shutdown() {
        pool.shutdownNow();
    }

    @Test
    void everyRankGetsTheRankOrderSumAndTheRootsBroadcast() throws Exception {
        List<double[]> sums = onRanks(3, c -> {
            double[] mine = {0.1 * (c.rank() + 1), 1e16, c.rank() == 2 ? -1e16 : 1.0};
            double[] sum = c.allReduceSum(mine);
            double[] fromTwo = c.broadcast(c.rank() == 2 ? new double[] {42, 43} : null, 2);
            assertArrayEquals(new double[] {42, 43}, fromTwo);
            return sum;
        });
        // Summed in rank order in one place: ((0.1 + 0.2) + 0.3), and 1e16 + 1e16 - 1e16 + ... exactly as written.
        double[] expected = {(0.1 + 0.2) + 0.30000000000000004, (1e16 + 1e16) + 1e16, (1.0 + 1.0) + -1e16};
        for (double[] s : sums) {
            assertArrayEquals(expected, s);
        }
    }

    @Test
    void rendezvousNamesTheRanksThatNeverJoined() throws Exception {
        try (TcpCollective.Host host = TcpCollective.listen(3, Duration.ofMillis(500))) {
            Future<TcpCollective> one = pool.submit(() -> TcpCollective.join(host.uniqueId(), 1, 3, TIMEOUT));
            CollectiveException e = assertThrows(CollectiveException.class, host::awaitPeers);
            assertTrue(e.getMessage().contains("missing rank 2"), e.getMessage());
            one.get().close();
        }
    }

    @Test
    void aStrangerWithTheWrongNonceIsTurnedAwayAndTheGroupStillForms() throws Exception {
        try (TcpCollective.Host host = TcpCollective.listen(2, TIMEOUT)) {
            String[] id = host.uniqueId().split(":");
            try (Socket stranger = new Socket(id[0], Integer.parseInt(id[1]))) {
                DataOutputStream out = new DataOutputStream(stranger.getOutputStream());
                out.writeUTF("not-the-nonce");
                out.writeInt(1);
                out.writeInt(2);
                out.flush();
                Future<TcpCollective> one = pool.submit(() -> TcpCollective.join(host.uniqueId(), 1, 2, TIMEOUT));
                try (TcpCollective zero = host.awaitPeers(); TcpCollective rankOne = one.get()) {
                    Future<double[]> theirs = pool.submit(() -> rankOne.allReduceSum(new double[] {2}));
                    assertArrayEquals(new double[] {3}, zero.allReduceSum(new double[] {1}));
                    assertArrayEquals(new double[] {3}, theirs.get());
                }
            }
        }
    }

    @Test
    void aPeerThatDiesFailsTheOthersNextOperationNamingIt() throws Exception {
        List<TcpCollective> group = form(3);
        group.get(2).close();
        Future<?> one = pool.submit(() -> group.get(1).allReduceSum(new double[] {1}));
        CollectiveException e = assertThrows(CollectiveException.class,
                () -> group.get(0).allReduceSum(new double[] {1}));
        assertTrue(e.getMessage().contains("rank 2"), e.getMessage());
        group.get(0).close();
        Exception onOne = assertThrows(Exception.class, one::get);
        assertTrue(onOne.getCause() instanceof CollectiveException, onOne.toString());
    }

    @Test
    void anAbortReachesEveryRankWithItsReason() throws Exception {
        List<TcpCollective> group = form(3);
        Future<?> zero = pool.submit(() -> group.get(0).allReduceSum(new double[] {1}));
        Future<?> two = pool.submit(() -> group.get(2).allReduceSum(new double[] {1}));
        group.get(1).abort("run cancelled");
        for (Future<?> f : List.of(zero, two)) {
            Exception e = assertThrows(Exception.class, f::get);
            assertTrue(e.getCause() instanceof CollectiveException, e.toString());
            assertTrue(e.getCause().getMessage().contains("rank 1 aborted: run cancelled"), e.getCause().getMessage());
        }
    }

    @Test
    void aSilentPeerTimesOut() throws Exception {
        // One timeout bounds the rendezvous too: 2 s so that a loaded machine still joins rank 1 before it runs out.
        try (TcpCollective.Host host = TcpCollective.listen(2, Duration.ofSeconds(2))) {
            Future<TcpCollective> one = pool.submit(() -> TcpCollective.join(host.uniqueId(), 1, 2, TIMEOUT));
            try (TcpCollective zero = host.awaitPeers(); TcpCollective silent = one.get()) {
                CollectiveException e = assertThrows(CollectiveException.class,
                        () -> zero.allReduceSum(new double[] {1}));
                assertTrue(e.getMessage().contains("rank 1 sent nothing"), e.getMessage());
            }
        }
    }

    private List<TcpCollective> form(int worldSize) throws Exception {
        TcpCollective.Host host = TcpCollective.listen(worldSize, TIMEOUT);
        List<Future<TcpCollective>> joins = new ArrayList<>();
        for (int r = 1; r < worldSize; r++) {
            int rank = r;
            joins.add(pool.submit(() -> TcpCollective.join(host.uniqueId(), rank, worldSize, TIMEOUT)));
        }
        List<TcpCollective> group = new ArrayList<>();
        group.add(host.awaitPeers());
        for (Future<TcpCollective> j : joins) {
            group.add(j.get());
        }
        return group;
    }

    private <T> List<T> onRanks(int worldSize, Function<Collective, T> body) throws Exception {
        List<TcpCollective> group = form(worldSize);
        List<Future<T>> results = new ArrayList<>();
        for (TcpCollective c : group) {
            Callable<T> task = () -> {
                try (c) {
                    return body.apply(c);
                }
            };
            results.add(pool.submit(task));
        }
        List<T> out = new ArrayList<>();
        for (Future<T> f : results) {
            out.add(f.get());
        }
        return out;
    }
}
