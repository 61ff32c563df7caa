package io.slope.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Tensor;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveException;
import io.slope.engine.parallel.CollectiveProvider;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;

/**
 * A {@link Collective} over one NCCL communicator, one rank per GPU (one process, or one thread, per device; ADR 041).
 *
 * <p>The communicator is non-blocking: every NCCL call returns at once and this class polls
 * {@code ncclCommGetAsyncError} and {@code cuStreamQuery} until the work is done, the group reports an error, the
 * timeout passes, or {@link #abort} is called. Any of the last three calls {@code ncclCommAbort} and turns into a
 * {@link CollectiveException}; every later operation throws too. No thread ever sits in a blocking CUDA or NCCL call
 * that a dead peer could make last forever.
 *
 * <p>Only one operation runs at a time (a lock). {@link #abort} may come from any thread: when an operation is running,
 * that operation's polling thread calls {@code ncclCommAbort} (NCCL calls on one communicator stay on one thread at a
 * time), otherwise {@link #abort} calls it itself.
 *
 * <p>Device-tensor operations run in place on the backend's stream, after the work already queued there (the backward
 * pass), and return once the stream has drained. Host-array operations (the session's restore agreement, the step's
 * loss) go through a small fp64 staging buffer on a stream of this collective's own. NVLink multicast (NVLS) is never
 * requested; the environment also sets {@code NCCL_NVLS_ENABLE=0}.
 */
final class NcclCollective implements Collective {
    static final String ID_PREFIX = "nccl:";
    private static final long POLL_NANOS = 20_000;

    private final Nccl nccl;
    private final int ordinal;
    private final int rank;
    private final int worldSize;
    private final Duration timeout;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CudaDevice.Stream stream = new CudaDevice.Stream();
    private final ReentrantLock lock = new ReentrantLock();
    private volatile String abortReason;
    /** Null once aborted or closed. Guarded by {@link #lock}. */
    private MemorySegment comm;
    private DevicePointer staging;
    private long stagingBytes;
    private boolean closed;
    /** Set once every rank has joined. */
    private volatile boolean ready;

    /**
     * Creates rank {@code rank}'s communicator on CUDA device {@code ordinal} and waits (polling, at most
     * {@code timeout}) until every rank has joined.
     */
    static NcclCollective open(int ordinal, byte[] uniqueId, int rank, int worldSize, Duration timeout) {
        NcclCollective c = create(ordinal, rank, worldSize, timeout);
        c.init(uniqueId);
        return c;
    }

    /** The CUDA side of a rank, before its communicator exists ({@link #init}). */
    private static NcclCollective create(int ordinal, int rank, int worldSize, Duration timeout) {
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " is outside a group of " + worldSize);
        }
        return new NcclCollective(Nccl.get(), ordinal, rank, worldSize, timeout);
    }

    /** Creates the communicator and waits for every rank; {@link #abort} during the wait ends it. */
    private void init(byte[] uniqueId) {
        try {
            lock.lock();
            try {
                failIfAborted("ncclCommInitRankConfig");
                cuCtxSetCurrent(context);
                comm = nccl.commInitRank(worldSize, uniqueId, rank);
                await("ncclCommInitRankConfig (rank " + rank + " of " + worldSize + " on GPU " + ordinal + ")", 0);
                ready = true;
            } finally {
                lock.unlock();
            }
        } catch (RuntimeException e) {
            lock.lock();
            try {
                abortNow();
            } finally {
                lock.unlock();
            }
            release();
            throw e instanceof CollectiveException ? e : new CollectiveException("NCCL rendezvous failed: "
                    + e.getMessage(), e);
        }
    }

    private NcclCollective(Nccl nccl, int ordinal, int rank, int worldSize, Duration timeout) {
        this.nccl = nccl;
        this.ordinal = ordinal;
        this.rank = rank;
        this.worldSize = worldSize;
        this.timeout = timeout;
        JCudaDriver.setExceptionsEnabled(true);
        cuInit(0);
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        cuStreamCreate(stream, 0);
    }

    /** The NCCL rendezvous on CUDA device {@code ordinal}: rank 0 draws a unique id, the others join with it. */
    static CollectiveProvider provider(int ordinal) {
        return new CollectiveProvider() {
            @Override
            public CollectiveProvider.Rendezvous listen(int worldSize, Duration timeout) {
                byte[] id = Nccl.get().uniqueId();
                String text = ID_PREFIX + Base64.getEncoder().encodeToString(id);
                return new CollectiveProvider.Rendezvous() {
                    private volatile NcclCollective opening;
                    private volatile boolean closed;

                    @Override
                    public String uniqueId() {
                        return text;
                    }

                    @Override
                    public Collective awaitPeers() {
                        NcclCollective c = create(ordinal, 0, worldSize, timeout);
                        opening = c;
                        if (closed) {
                            c.abort("the rendezvous was closed");
                        }
                        c.init(id);
                        return c;
                    }

                    /** Ends a wait for the peers (cancellation); a communicator that is up belongs to its owner. */
                    @Override
                    public void close() {
                        closed = true;
                        NcclCollective c = opening;
                        if (c != null && !c.ready) {
                            c.abort("the rendezvous was closed before every rank joined");
                        }
                    }
                };
            }

            @Override
            public Collective join(String uniqueId, int rank, int worldSize, Duration timeout) {
                return open(ordinal, parseId(uniqueId), rank, worldSize, timeout);
            }
        };
    }

    /** The 128 bytes of an {@code nccl:<base64>} id. */
    static byte[] parseId(String uniqueId) {
        if (uniqueId == null || !uniqueId.startsWith(ID_PREFIX)) {
            throw new IllegalArgumentException("not an NCCL collective id (nccl:<base64>): " + uniqueId);
        }
        byte[] id;
        try {
            id = Base64.getDecoder().decode(uniqueId.substring(ID_PREFIX.length()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("NCCL collective id is not base64: " + uniqueId, e);
        }
        if (id.length != Nccl.UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("NCCL collective id holds " + id.length + " bytes, not "
                    + Nccl.UNIQUE_ID_BYTES);
        }
        return id;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    // ---- host arrays ------------------------------------------------------------------------------------------------

    @Override
    public double[] allReduceSum(double[] local) {
        return op("allReduceSum(" + local.length + " doubles)", () -> {
            int n = local.length;
            if (n == 0) {
                return new double[0];
            }
            DevicePointer buf = staging(8L * n);
            cuMemcpyHtoD(buf, Pointer.to(local), 8L * n);
            nccl.checkAccepted("ncclAllReduce", nccl.allReduceSum(buf.address(), buf.address(), n, Nccl.FLOAT64,
                    comm, stream.handle()));
            await("ncclAllReduce of " + n + " doubles", stream.handle());
            double[] out = new double[n];
            cuMemcpyDtoH(Pointer.to(out), buf, 8L * n);
            return out;
        });
    }

    @Override
    public double[] broadcast(double[] data, int root) {
        if (rank == root && data == null) {
            throw new IllegalArgumentException("the root of a broadcast passes its array");
        }
        checkRoot(root);
        return op("broadcast from rank " + root, () -> {
            // The length first (the other ranks do not know it), then the values.
            double[] length = hostBroadcast(new double[] {rank == root ? data.length : 0}, 1, root);
            int n = (int) length[0];
            return n == 0 ? new double[0] : hostBroadcast(rank == root ? data : null, n, root);
        });
    }

    private double[] hostBroadcast(double[] data, int n, int root) {
        DevicePointer buf = staging(8L * n);
        if (rank == root) {
            cuMemcpyHtoD(buf, Pointer.to(data), 8L * n);
        }
        nccl.checkAccepted("ncclBroadcast", nccl.broadcast(buf.address(), buf.address(), n, Nccl.FLOAT64, root, comm,
                stream.handle()));
        await("ncclBroadcast of " + n + " doubles from rank " + root, stream.handle());
        double[] out = new double[n];
        cuMemcpyDtoH(Pointer.to(out), buf, 8L * n);
        return out;
    }

    private DevicePointer staging(long bytes) {
        if (staging == null || stagingBytes < bytes) {
            if (staging != null) {
                cuMemFree(staging);
                staging = null;
            }
            long size = Math.max(bytes, 4096);
            DevicePointer p = new DevicePointer();
            cuMemAlloc(p, size);
            staging = p;
            stagingBytes = size;
        }
        return staging;
    }

    // ---- device tensors ---------------------------------------------------------------------------------------------

    /** In place on the backend's stream, one NCCL group, no host copy; returns when the stream has drained. */
    @Override
    public void allReduceSum(Backend backend, List<Tensor> tensors) {
        if (!(backend instanceof CudaBackend cuda)) {
            Collective.super.allReduceSum(backend, tensors);
            return;
        }
        long s = streamOf(cuda);
        List<CudaTensor> ts = tensors.stream().map(CudaBackend::cuda).filter(t -> t.count > 0).toList();
        ts.forEach(CudaTensor::written);
        op("allReduceSum of " + ts.size() + " tensors", () -> {
            grouped("ncclAllReduce", () -> {
                for (CudaTensor t : ts) {
                    nccl.checkAccepted("ncclAllReduce(" + t + ")", nccl.allReduceSum(t.address, t.address, t.count,
                            Nccl.dataType(t.dtype), comm, s));
                }
            });
            await("ncclAllReduce of " + ts.size() + " tensors", s);
            return null;
        });
    }

    /** In place on the backend's stream, one NCCL group: tensor i from rank {@code roots[i]}. */
    @Override
    public void broadcast(Backend backend, List<Tensor> tensors, int[] roots) {
        if (tensors.size() != roots.length) {
            throw new IllegalArgumentException(tensors.size() + " tensors but " + roots.length + " roots");
        }
        if (!(backend instanceof CudaBackend cuda)) {
            Collective.super.broadcast(backend, tensors, roots);
            return;
        }
        for (int root : roots) {
            checkRoot(root);
        }
        long s = streamOf(cuda);
        List<CudaTensor> ts = tensors.stream().map(CudaBackend::cuda).toList();
        if (ts.stream().anyMatch(t -> t.count == 0)) {
            throw new IllegalArgumentException("an empty tensor in a broadcast");
        }
        ts.forEach(CudaTensor::written);
        op("broadcast of " + ts.size() + " tensors", () -> {
            grouped("ncclBroadcast", () -> {
                for (int i = 0; i < ts.size(); i++) {
                    CudaTensor t = ts.get(i);
                    nccl.checkAccepted("ncclBroadcast(" + t + " from rank " + roots[i] + ")", nccl.broadcast(
                            t.address, t.address, t.count, Nccl.dataType(t.dtype), roots[i], comm, s));
                }
            });
            await("ncclBroadcast of " + ts.size() + " tensors", s);
            return null;
        });
    }

    private long streamOf(CudaBackend backend) {
        if (backend.deviceOrdinal() != ordinal) {
            throw new IllegalArgumentException("tensors on GPU " + backend.deviceOrdinal() + " but this rank's NCCL"
                    + " communicator is on GPU " + ordinal);
        }
        return backend.device().streamHandle();
    }

    private void checkRoot(int root) {
        if (root < 0 || root >= worldSize) {
            throw new IllegalArgumentException("root " + root + " is outside a group of " + worldSize);
        }
    }

    /** ncclGroupStart, the enqueues, ncclGroupEnd (also after a failed enqueue, so this thread's group depth is 0). */
    private void grouped(String what, Runnable enqueue) {
        nccl.check("ncclGroupStart", nccl.groupStart());
        try {
            enqueue.run();
        } catch (RuntimeException e) {
            nccl.groupEnd();
            throw e;
        }
        nccl.checkAccepted("ncclGroupEnd (" + what + ")", nccl.groupEnd());
    }

    // ---- running, waiting, failing ----------------------------------------------------------------------------------

    /** Runs {@code body} holding the lock with the context current; an NCCL or CUDA failure aborts the group. */
    private <T> T op(String what, Supplier<T> body) {
        lock.lock();
        try {
            failIfAborted(what);
            if (comm == null) {
                throw new CollectiveException(what + ": the NCCL collective is closed");
            }
            cuCtxSetCurrent(context);
            return body.get();
        } catch (CollectiveException | IllegalArgumentException e) {
            throw e;
        } catch (RuntimeException e) {
            abortNow();
            throw new CollectiveException("rank " + rank + ": " + what + " failed, NCCL group aborted: "
                    + e.getMessage(), e);
        } finally {
            if (abortReason != null) {
                abortNow();
            }
            lock.unlock();
        }
    }

    /**
     * Polls until the communicator is no longer in progress and (when {@code stream} is not 0) the stream has drained;
     * an error, {@link #abort} or the timeout aborts the communicator and throws.
     */
    private void await(String what, long stream) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            failIfAborted(what);
            int state = nccl.asyncError(comm);
            if (state != Nccl.SUCCESS && state != Nccl.IN_PROGRESS) {
                String error = nccl.describe(state);
                abortNow();
                throw new CollectiveException("rank " + rank + ": " + what + ": NCCL reported " + error
                        + "; the group is aborted");
            }
            if (state == Nccl.SUCCESS) {
                if (stream == 0) {
                    return;
                }
                int q = nccl.streamQuery(stream);
                if (q == Nccl.CUDA_SUCCESS) {
                    return;
                }
                if (q != Nccl.CUDA_ERROR_NOT_READY) {
                    abortNow();
                    throw new CollectiveException("rank " + rank + ": " + what + ": cuStreamQuery returned CUresult "
                            + q + "; the group is aborted");
                }
            }
            if (System.nanoTime() - deadline > 0) {
                abortReason = "timed out in " + what;
                abortNow();
                throw new CollectiveException("rank " + rank + " of " + worldSize + ": " + what + " did not complete"
                        + " within " + timeout.toSeconds() + " s (a peer died or stalled); the group is aborted");
            }
            LockSupport.parkNanos(POLL_NANOS);
        }
    }

    private void failIfAborted(String what) {
        String reason = abortReason;
        if (reason != null) {
            abortNow();
            throw new CollectiveException("rank " + rank + ": " + what + ": collective aborted: " + reason);
        }
    }

    /** ncclCommAbort once; the caller holds the lock. */
    private void abortNow() {
        if (comm == null) {
            return;
        }
        MemorySegment c = comm;
        comm = null;
        if (abortReason == null) {
            abortReason = "aborted after a failure";
        }
        cuCtxSetCurrent(context);
        int status = nccl.abort(c);
        if (status != Nccl.SUCCESS) {
            System.err.println("rank " + rank + ": ncclCommAbort returned " + nccl.describe(status));
        }
    }

    @Override
    public void abort(String reason) {
        if (abortReason == null) {
            abortReason = reason;
        }
        // A running operation sees the reason within one poll and aborts itself; an idle communicator is aborted here.
        if (lock.tryLock()) {
            try {
                abortNow();
            } finally {
                lock.unlock();
            }
        }
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            if (comm != null) {
                try {
                    cuCtxSetCurrent(context);
                    nccl.checkAccepted("ncclCommFinalize", nccl.finalizeComm(comm));
                    await("ncclCommFinalize", 0);
                    MemorySegment c = comm;
                    comm = null;
                    nccl.check("ncclCommDestroy", nccl.destroy(c));
                } catch (RuntimeException e) {
                    abortNow();
                    System.err.println("rank " + rank + ": NCCL communicator not finalized cleanly (" + e.getMessage()
                            + "); aborted");
                }
            }
            release();
        } finally {
            lock.unlock();
        }
    }

    /** The CUDA resources (after the communicator is gone). */
    private void release() {
        cuCtxSetCurrent(context);
        if (staging != null) {
            cuMemFree(staging);
            staging = null;
        }
        cuStreamDestroy(stream);
        cuDevicePrimaryCtxRelease(device);
    }
}
