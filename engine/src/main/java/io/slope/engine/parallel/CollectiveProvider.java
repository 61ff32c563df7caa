package io.slope.engine.parallel;

import java.io.IOException;
import java.time.Duration;

/**
 * How the ranks of one backend find each other, NCCL-style: rank 0 calls {@link #listen} and hands
 * {@link Rendezvous#uniqueId()} to the others (through the workflow, or the local launcher), which {@link #join} with
 * it. The backend names its provider ({@code Backend.collectives()}): loopback TCP on the CPU, NCCL on CUDA.
 */
public interface CollectiveProvider {
    /**
     * Rank 0's side. {@code timeout} bounds the rendezvous and every later wait for a peer: a peer silent for that
     * long is taken for dead.
     */
    Rendezvous listen(int worldSize, Duration timeout) throws IOException;

    /** Rank {@code rank} (1 … worldSize−1) joins the group that rank 0's {@code uniqueId} names. */
    Collective join(String uniqueId, int rank, int worldSize, Duration timeout) throws IOException;

    /** Rank 0's open rendezvous. */
    interface Rendezvous extends AutoCloseable {
        /** What the other ranks join with; opaque, printable, no whitespace. */
        String uniqueId();

        /** Waits until every other rank has joined and returns rank 0's collective; fails naming the missing ranks. */
        Collective awaitPeers() throws IOException;

        @Override
        void close() throws IOException;
    }
}
