package io.slope.engine.parallel;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

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
     * {@link #allReduceSum(double[])} of backend tensors, in place: every rank passes tensors of the same shapes in the
     * same order. This default goes through the host as one array; NCCL overrides it on the device with no host copy.
     */
    default void allReduceSum(Backend backend, List<Tensor> tensors) {
        List<double[]> local = new ArrayList<>();
        int total = 0;
        for (Tensor t : tensors) {
            double[] v = backend.download(t);
            local.add(v);
            total = Math.addExact(total, v.length);
        }
        double[] bucket = new double[total];
        int offset = 0;
        for (double[] v : local) {
            System.arraycopy(v, 0, bucket, offset, v.length);
            offset += v.length;
        }
        double[] sum = allReduceSum(bucket);
        offset = 0;
        for (int i = 0; i < tensors.size(); i++) {
            int n = local.get(i).length;
            backend.upload(tensors.get(i), Arrays.copyOfRange(sum, offset, offset + n));
            offset += n;
        }
    }

    /**
     * {@link #broadcast(double[], int)} of backend tensors, in place: tensor i from rank {@code roots[i]}. This default
     * goes through the host one tensor at a time; NCCL overrides it with one group on the device.
     */
    default void broadcast(Backend backend, List<Tensor> tensors, int[] roots) {
        if (tensors.size() != roots.length) {
            throw new IllegalArgumentException(tensors.size() + " tensors but " + roots.length + " roots");
        }
        for (int i = 0; i < tensors.size(); i++) {
            boolean mine = roots[i] == rank();
            double[] value = broadcast(mine ? backend.download(tensors.get(i)) : null, roots[i]);
            if (!mine) {
                backend.upload(tensors.get(i), value);
            }
        }
    }

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
