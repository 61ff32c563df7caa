package io.slope.engine.parallel;

/**
 * Collective operations among the ranks of one data-parallel run, on host arrays: NCCL implements the same contract on
 * device buffers for the CUDA backend; {@link TcpCollective} implements it over loopback TCP so that the rendezvous,
 * failure and re-shard logic runs anywhere; {@link #single()} is the one-rank path.
 *
 * <p>Every rank calls the same operations in the same order. Results are identical bits on every rank: sums are taken
 * in rank order in one place.
 */
public interface Collective extends AutoCloseable {
    int rank();

    int worldSize();

    /** Element-wise sum over all ranks, in rank order; every rank gets the result. */
    double[] allReduceSum(double[] local);

    /** {@code root}'s array on every rank; other ranks pass null. */
    double[] broadcast(double[] data, int root);

    /**
     * Fails every pending and future operation on every rank with a {@link CollectiveException} carrying
     * {@code reason} (NCCL's {@code ncclCommAbort}); used on cancellation and when a peer stops heartbeating.
     */
    void abort(String reason);

    @Override
    void close();

    /** The one-rank group: every operation is the identity. */
    static Collective single() {
        return SingleRank.INSTANCE;
    }
}
