package io.slope.cuda;

import io.slope.engine.backend.AdamWStep;
import io.slope.engine.backend.AdamWUpdate;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.KernelChoices;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUgraphExec;

/**
 * The CUDA backend: every {@link Backend} operation queued on one stream of one GPU, synchronising only in
 * {@code download*}. Project kernels (src/main/cuda, a file per layer) for the memory-bound layers, cuBLASLt for
 * dense GEMMs, cuSPARSELt for the 2:4 GEMMs of the sparse layers (docs/method.md, ADR 004).
 *
 * <p>{@link Precision#BF16}: GEMM operands in bf16 with fp32 accumulation (fp32 tensors such as the master weights are
 * cast on the way in), outputs at each tensor's own precision. {@link Precision#FP32_DEBUG}: every GEMM in fp32 (no
 * TF32), sparse layers as masked dense GEMMs: the mode that must match the CPU to 1e-5.
 */
public final class CudaBackend implements Backend {
    public enum Precision {
        BF16,
        FP32_DEBUG
    }

    /**
     * Which attention the bf16 mode runs ({@code SLOPE_CUDA_ATTENTION}): cuDNN's fused SDPA when it can be had
     * ({@code auto}, the default: otherwise the project's kernels, saying why once), cuDNN or an error
     * ({@code cudnn}), or the project's kernels ({@code own}). The fp32 debug mode always runs the project's kernels.
     */
    public enum Attention {
        AUTO,
        CUDNN,
        OWN;

        static Attention fromEnvironment() {
            String v = System.getenv().getOrDefault("SLOPE_CUDA_ATTENTION", "auto");
            try {
                return valueOf(v.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("SLOPE_CUDA_ATTENTION=" + v + ": use auto, cudnn or own");
            }
        }
    }

    private static final int THREADS = 256;
    private static final int MAX_GRID_Y = 65535;
    /** Kernel-choice keys of the 2:4-or-dense dX decision ({@link #dxOnDense}); values "2:4" or "dense". */
    static final String DX_CHOICE_PREFIX = "slope dX ";
    private static final int DX_TIMING_REPS = 5;
    /** cuSPARSELt's batch (rows) multiple for the 2:4 kernels ({@link CusparseLt#fits}). */
    private static final int SPARSE_ROW_MULTIPLE = 16;
    /** The most rows two_four_few_rows_forward takes (FEW_ROWS_MAX), its output rows per block and its threads. */
    private static final int FEW_ROWS_MAX = 16;
    private static final int FEW_ROWS_TILE = 16;
    private static final int FEW_ROWS_THREADS = 512;
    /** cuSPARSELt's multiple for a sparse operand's rows: the stacked [W^R; Aᵀ] pads A's r rows to it. */
    private static final int SPARSE_OPERAND_ROW_MULTIPLE = 32;
    /** linear_low_rank_epilogue's output tile per block of THREADS (LR_TILE_ROWS, LR_TILE_COLS). */
    private static final int LOW_RANK_TILE_ROWS = 64;
    private static final int LOW_RANK_TILE_COLS = 128;
    /** linear_low_rank_epilogue's rank chunk (LR_RANK_CHUNK): the rank it runs over is padded to it. */
    private static final int LOW_RANK_CHUNK = 32;
    /** nm_column_prune_kept's columns per block (PRUNE_COLUMNS), one thread each. */
    private static final int PRUNE_COLUMNS = 128;
    /** The largest N of the layernorm_*_bf16_N kernels (C ≤ 2560). */
    private static final int LAYERNORM_MAX_VECTORS_PER_LANE = 10;
    /**
     * layernorm_backward_bf16_N's dynamic shared memory per warp and vector of 8 columns: the stashed inp and dout, 16
     * bytes each, and the warp's four float4 planes of parameter-gradient sums.
     */
    private static final int LAYERNORM_BACKWARD_WARP_BYTES = 96;
    /** attention_decode's warps per (sequence, head) and its largest head size (DECODE_WARPS, DECODE_MAX_HS). */
    private static final int DECODE_WARPS = 8;
    private static final int DECODE_MAX_HEAD_SIZE = 128;
    private static final int REDUCE_CHUNK_ROWS = 32;
    /**
     * Rows per partial of the bf16 column sums (bias and LayerNorm parameter gradients): 32 partials at 8192 rows for
     * the finish to add.
     */
    private static final int COLUMN_SUMS_CHUNK_ROWS = 256;
    /** cross_entropy_forward_backward_bf16 keeps a row in registers: 1024 threads × CE_VECS × 8 values. */
    private static final int CE_MAX_REGISTER_VOCAB = 1024 * 7 * 8;
    private static final long CUBLAS_WORKSPACE = 32L << 20;
    private static final int ERR_TOKEN = 1;
    private static final int ERR_TARGET = 2;
    private static final int ERR_COLUMN_MASK = 3;
    private static final int ERR_POSITION = 4;

    // Scratch slots: each op uses distinct slots; ops run in stream order, so slots are reused across ops.
    private static final int SLOT_A = 0;
    private static final int SLOT_B = 1;
    private static final int SLOT_D = 2;
    private static final int SLOT_DENSE = 3;
    private static final int SLOT_PARTIAL = 4;
    private static final int SLOT_HOST_UPLOAD = 5;
    private static final int SLOT_BIAS = 6;
    private static final int SLOT_XA = 7;
    private static final int SLOTS = 8;

    private final CudaDevice device;
    private final int deviceOrdinal;
    private final Precision precision;
    private final CublasLt cublas;
    private final CusparseLt cusparse;
    /** The backward operand's metadata written by our kernel at a refresh, per shape where its layout verified. */
    private final CompressedMetadata metadata;
    /**
     * Whether a refresh writes the backward operand's metadata with our kernel where the shape's layout verified
     * (SLOPE_OWN_METADATA=0: cuSPARSELt's compress of the support everywhere, to compare).
     */
    private boolean ownMetadata = !"0".equals(System.getenv("SLOPE_OWN_METADATA"));
    /**
     * Whether a 2:4 layer's forward of at most 16 rows (a decoding step) runs on two_four_few_rows_forward, which reads
     * the weights once (SLOPE_SPARSE_DECODE=0: cuSPARSELt with the rows padded to 16, to compare).
     */
    private boolean fewRowsKernel = !"0".equals(System.getenv("SLOPE_SPARSE_DECODE"));
    private final DevicePointer cublasWorkspace;
    private final DevicePointer errorWord;
    private final DevicePointer[] scratch = new DevicePointer[SLOTS];
    private final long[] scratchBytes = new long[SLOTS];
    private MultiTensorTable sumTable;
    private MultiTensorTable zeroTable;
    private MultiTensorTable adamwTable;
    /** What {@link #close} frees; by identity, so that {@link #release} finds a tensor's own pointer. */
    private final Set<DevicePointer> allocations = Collections.newSetFromMap(new IdentityHashMap<>());
    private final List<CudaSparseLinear> sparseLayers = new ArrayList<>();
    private final Map<String, String> dxChoices = new HashMap<>();
    /** cuDNN's fused attention in the bf16 mode when it can be had (ADR 008); null: the project's kernels. */
    private final CudnnAttention cudnn;
    private final String attention;

    /**
     * Opens CUDA device {@code deviceOrdinal} (as the driver numbers them after {@code CUDA_VISIBLE_DEVICES}: a launcher
     * that gives each rank process one GPU leaves every rank on device 0; in-process multi-GPU tests pass 0, 1, …).
     */
    public CudaBackend(int deviceOrdinal, Precision precision) {
        this(deviceOrdinal, precision, Attention.fromEnvironment());
    }

    public CudaBackend(int deviceOrdinal, Precision precision, Attention attentionChoice) {
        this.device = new CudaDevice(deviceOrdinal);
        this.deviceOrdinal = deviceOrdinal;
        this.precision = precision;
        this.cublasWorkspace = device.allocate(CUBLAS_WORKSPACE);
        this.cublas = new CublasLt(device, cublasWorkspace.address(), CUBLAS_WORKSPACE);
        this.cusparse = new CusparseLt(device);
        this.metadata = new CompressedMetadata(device, cusparse);
        this.errorWord = device.allocate(4);
        device.memsetZero(errorWord, 4);
        this.cudnn = precision == Precision.BF16 ? openCudnn(attentionChoice) : null;
        this.attention = cudnn != null ? "cuDNN " + cudnn.version() + " fused SDPA" : "slope kernels";
    }

    private CudnnAttention openCudnn(Attention choice) {
        if (choice == Attention.OWN) {
            return null;
        }
        try {
            return CudnnAttention.open(device);
        } catch (RuntimeException e) {
            if (choice == Attention.CUDNN) {
                throw new IllegalStateException("cuDNN attention was asked for, but " + e.getMessage(), e);
            }
            System.err.println("slope: cuDNN attention unavailable, using the project's attention kernels: "
                    + e.getMessage());
            return null;
        }
    }

    /** Which attention runs: cuDNN's fused SDPA (with its version) or the project's kernels. */
    public String attentionImplementation() {
        return cudnn == null ? attention : attention + (cudnn.deterministic() ? ", deterministic" : "");
    }

    @Override
    public String name() {
        return "cuda(" + device.name() + ", sm_" + device.computeCapability() + ", " + precision + ")";
    }

    public Precision precision() {
        return precision;
    }

    /** Driver, cuBLASLt and cuSPARSELt versions, for result files. */
    public String versions() {
        return "driver " + device.driverVersion() + ", cuBLASLt " + cublas.version() + ", cuSPARSELt "
                + cusparse.version();
    }

    long cublasVersion() {
        return cublas.version();
    }

    public String deviceName() {
        return device.name();
    }

    /** Per-operation {calls, nanoseconds} when SLOPE_CUDA_PROFILE=1 (each operation synchronised); else empty. */
    public java.util.Map<String, long[]> profile() {
        return device.profile();
    }

    /** Starts or stops the range an external profiler (ncu --profile-from-start off) records; benchmarks only. */
    public void profilerRange(boolean start) {
        device.profilerRange(start);
    }

    /** Free and total device memory in bytes. */
    public long[] memoryInfo() {
        return device.memoryInfo();
    }

    CudaDevice device() {
        return device;
    }

    public int deviceOrdinal() {
        return deviceOrdinal;
    }

    /** NCCL on this backend's GPU (ADR 041): gradients and weights are reduced and broadcast on the device. */
    @Override
    public CollectiveProvider collectives() {
        return NcclCollective.provider(deviceOrdinal);
    }

    CusparseLt cusparse() {
        return cusparse;
    }

    // ---- kernel choices -----------------------------------------------------------------------------------------

    /**
     * cuBLASLt's algorithm per dense GEMM shape, cuSPARSELt's per 2:4 operand shape and batch width, and per 2:4 dX
     * shape whether the 2:4 or the masked dense GEMM was faster ({@link #dxOnDense}).
     */
    @Override
    public KernelChoices kernelChoices() {
        Map<String, String> choices = new HashMap<>(cublas.choices());
        choices.putAll(cusparse.choices());
        choices.putAll(dxChoices);
        return new KernelChoices(Map.of("gpu", device.name(), "computeCapability",
                Integer.toString(device.computeCapability()), "cublasLt", Long.toString(cublas.version()),
                "cusparseLt", Integer.toString(cusparse.version())), choices);
    }

    @Override
    public void reuseKernelChoices(KernelChoices recorded) {
        KernelChoices current = kernelChoices();
        if (!recorded.appliesTo(current)) {
            throw new IllegalArgumentException("kernel choices made for " + recorded.validFor() + " do not apply to "
                    + current.validFor());
        }
        cublas.reuse(recorded.choices());
        cusparse.reuse(recorded.choices());
        recorded.choices().forEach((key, choice) -> {
            if (key.startsWith(DX_CHOICE_PREFIX)) {
                dxChoices.putIfAbsent(key, choice);
            }
        });
    }

    // ---- memory -------------------------------------------------------------------------------------------------

    /** bf16 activations in the bf16 mode (fp32 master weights stay fp32); the parameters' type in fp32 debug. */
    @Override
    public DType activationType(DType parameterType) {
        return precision == Precision.BF16 ? DType.BF16 : parameterType;
    }

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        long bytes = CudaTensor.count(shape) * dtype.bytes();
        DevicePointer p = allocate(bytes);
        device.memsetZero(p, bytes);
        return new CudaTensor(dtype, shape, p);
    }

    private DevicePointer allocate(long bytes) {
        DevicePointer p = device.allocate(bytes);
        allocations.add(p);
        return p;
    }

    private DevicePointer allocateZeroed(long bytes) {
        DevicePointer p = allocate(bytes);
        device.memsetZero(p, bytes);
        return p;
    }

    /** Frees the tensor's memory, its bf16 copy and token buckets (an attention state: its buffers). */
    @Override
    public void release(Tensor t) {
        if (t instanceof AttentionState s) {
            release(s.stats);
            if (s.outputCopy != null) {
                release(s.outputCopy);
            }
            return;
        }
        CudaTensor c = cuda(t);
        free(c.pointer);
        if (c.bf16Copy != null && !c.bf16CopyBorrowed) {
            free(c.bf16Copy);
        }
        dropBuckets(c);
    }

    private void dropBuckets(CudaTensor c) {
        if (c.buckets != null) {
            release(c.buckets.tokens());
            release(c.buckets.starts());
            release(c.buckets.rows());
            c.buckets = null;
        }
    }

    /** Frees one of this backend's allocations once the queued work that may read it is done; others are ignored. */
    private void free(DevicePointer p) {
        if (allocations.remove(p)) {
            device.synchronize();
            device.free(p);
        }
    }

    @Override
    public void upload(Tensor dst, double[] src) {
        CudaTensor t = cuda(dst);
        requireCount(t, src.length, "upload");
        Pointer host = switch (t.dtype) {
            case F64 -> Pointer.to(src);
            case F32 -> {
                float[] f = new float[src.length];
                for (int i = 0; i < f.length; i++) {
                    f[i] = (float) src[i];
                }
                yield Pointer.to(f);
            }
            case BF16 -> {
                short[] h = new short[src.length];
                for (int i = 0; i < h.length; i++) {
                    h[i] = Bf16.bits(src[i]);
                }
                yield Pointer.to(h);
            }
            case I32 -> throw new IllegalArgumentException("upload of floating values into an I32 tensor");
        };
        device.copyToDevice(t.pointer, host, t.bytes());
        t.written();
        device.weightsChanged();
    }

    @Override
    public void uploadInts(Tensor dst, int[] src) {
        CudaTensor t = cuda(dst);
        if (t.dtype != DType.I32) {
            throw new IllegalArgumentException("uploadInts into a " + t.dtype + " tensor");
        }
        requireCount(t, src.length, "uploadInts");
        // Queued, not synchronised: ids are uploaded before every micro-batch and decoding step.
        device.copyToDeviceQueued(t.pointer, src, src.length);
        uploadBuckets(t, src);
    }

    /**
     * Groups the rows of an uploaded id tensor by id, ids ascending and rows ascending within an id (a counting sort
     * over the ids' range: host time on every micro-batch, before the GPU has work) for {@link #embeddingBackward}.
     * Ids outside [0, 2^24) get no buckets: the embedding kernels report them, and its backward takes the plain path.
     */
    private void uploadBuckets(CudaTensor t, int[] ids) {
        int n = ids.length;
        int max = 0;
        for (int id : ids) {
            if (id < 0 || id >= 1 << 24) {
                dropBuckets(t);
                return;
            }
            max = Math.max(max, id);
        }
        int[] slot = new int[max + 1];
        int distinct = 0;
        for (int id : ids) {
            if (slot[id]++ == 0) {
                distinct++;
            }
        }
        int[] tokens = new int[distinct];
        // Token u's rows are starts[u] .. starts[u + 1]; the count at n + 1, where embedding_backward_wte_buckets
        // reads it.
        int[] starts = new int[n + 2];
        starts[n + 1] = distinct;
        for (int id = 0, u = 0; id <= max; id++) {
            if (slot[id] > 0) {
                tokens[u] = id;
                starts[u + 1] = starts[u] + slot[id];
                slot[id] = u++;
            }
        }
        int[] cursor = java.util.Arrays.copyOf(starts, distinct);
        int[] rows = new int[n];
        for (int r = 0; r < n; r++) {
            rows[cursor[slot[ids[r]]]++] = r;
        }
        if (t.buckets == null || t.buckets.tokens().count < distinct) {
            t.buckets = new CudaTensor.TokenBuckets(distinct, (CudaTensor) zeros(DType.I32, Math.max(1, n)),
                    (CudaTensor) zeros(DType.I32, n + 2), (CudaTensor) zeros(DType.I32, Math.max(1, n)));
        }
        t.buckets = new CudaTensor.TokenBuckets(distinct, t.buckets.tokens(), t.buckets.starts(), t.buckets.rows());
        device.copyToDeviceQueued(t.buckets.tokens().pointer, tokens, distinct);
        device.copyToDeviceQueued(t.buckets.starts().pointer, starts, n + 2);
        device.copyToDeviceQueued(t.buckets.rows().pointer, rows, n);
    }

    @Override
    public double[] download(Tensor src) {
        CudaTensor t = cuda(src);
        checkErrorWord();
        int n = Math.toIntExact(t.count);
        double[] out = new double[n];
        switch (t.dtype) {
            case F64 -> device.copyToHost(Pointer.to(out), t.pointer, t.bytes());
            case F32 -> {
                float[] f = new float[n];
                device.copyToHost(Pointer.to(f), t.pointer, t.bytes());
                for (int i = 0; i < n; i++) {
                    out[i] = f[i];
                }
            }
            case BF16 -> {
                short[] h = new short[n];
                device.copyToHost(Pointer.to(h), t.pointer, t.bytes());
                for (int i = 0; i < n; i++) {
                    out[i] = Bf16.value(h[i]);
                }
            }
            case I32 -> throw new IllegalArgumentException("download of an I32 tensor; use downloadInts");
        }
        return out;
    }

    @Override
    public int[] downloadInts(Tensor src) {
        CudaTensor t = cuda(src);
        if (t.dtype != DType.I32) {
            throw new IllegalArgumentException("downloadInts of a " + t.dtype + " tensor");
        }
        checkErrorWord();
        int[] out = new int[Math.toIntExact(t.count)];
        device.copyToHost(Pointer.to(out), t.pointer, t.bytes());
        return out;
    }

    /** Raw bytes of a device buffer (tests of the compressed layout). */
    byte[] downloadBytes(DevicePointer p, long bytes) {
        byte[] out = new byte[Math.toIntExact(bytes)];
        device.copyToHost(Pointer.to(out), p, bytes);
        return out;
    }

    /** Kernels report invalid ids through one device word; it is read with every download. */
    private void checkErrorWord() {
        int[] err = new int[1];
        device.copyToHost(Pointer.to(err), errorWord, 4);
        if (err[0] != 0) {
            device.memsetZero(errorWord, 4);
            throw new IllegalArgumentException(switch (err[0]) {
                case ERR_TOKEN -> "a token id outside the vocabulary reached embeddingForward";
                case ERR_TARGET -> "a target id outside the vocabulary reached crossEntropyForwardBackward";
                case ERR_COLUMN_MASK -> "a column mask that keeps more than 2 of some 4 along d_out reached the"
                        + " in-place backward operand of a sparse layer";
                case ERR_POSITION -> "a position outside the KV cache reached embeddingForwardAt, kvCacheStore or"
                        + " attentionDecode (which then wrote nothing)";
                default -> "kernel error code " + err[0];
            });
        }
    }

    @Override
    public void declareWeight(Tensor weight) {
        CudaTensor w = cuda(weight);
        w.keepsBf16Copy = w.dtype == DType.F32 && precision == Precision.BF16;
    }

    @Override
    public void zero(Tensor t) {
        CudaTensor c = cuda(t);
        device.memsetZero(c.pointer, c.bytes());
        c.written();
        if (c.bf16Copy != null) {
            device.weightsChanged();
        }
    }

    /**
     * {@link #repeat} records a pass at its third call within one generation of the device's memory (the first two run
     * it: algorithm searches, the dX timing and scratch growth happen there) and replays the recording from then on;
     * SLOPE_CUDA_GRAPHS=0 runs every pass eagerly (to compare, or to rule the graphs out when looking for a fault).
     */
    static final boolean GRAPHS_BY_DEFAULT = !"0".equals(System.getenv("SLOPE_CUDA_GRAPHS"));
    private boolean graphs = GRAPHS_BY_DEFAULT;
    private static final int EAGER_CALLS_BEFORE_RECORDING = 2;
    private final Map<String, Recording> recordings = new HashMap<>();
    private long replays;

    private static final class Recording {
        long generation = -1;
        int eagerCalls;
        CUgraphExec exec;
    }

    @Override
    public void repeat(String key, Runnable pass) {
        if (!graphs || device.profiling() && !device.timesReplays()) {
            pass.run();
            return;
        }
        Recording r = recordings.computeIfAbsent(key, k -> new Recording());
        if (r.generation != device.generation()) {
            dropRecording(r);
            r.eagerCalls = 0;
        }
        if (r.exec == null && r.eagerCalls < EAGER_CALLS_BEFORE_RECORDING) {
            pass.run();
            r.eagerCalls++;
            r.generation = device.generation();
            return;
        }
        if (r.exec == null) {
            dropStaleRecordings();
            r.exec = device.record(pass);
            r.generation = device.generation();
        }
        device.timed("replay of " + key.split(" ", 2)[0], () -> device.launch(r.exec));
        replays++;
    }

    /** How many passes {@link #repeat} has replayed from a recording so far (the bench says whether graphs ran). */
    long replays() {
        return replays;
    }

    /** Turns the recording of repeated passes on or off (the test of the recorded step against the eager one). */
    void recordRepeatedPasses(boolean on) {
        graphs = on;
        dropRecordings();
    }

    private void dropRecordings() {
        recordings.values().forEach(this::dropRecording);
        recordings.clear();
    }

    /**
     * Drops the recordings of earlier generations, which would be made again at their next call anyway: a pass whose
     * buffers are gone (each sampled text decodes into a cache of its own) keeps no graph.
     */
    private void dropStaleRecordings() {
        recordings.values().removeIf(r -> {
            if (r.generation == device.generation()) {
                return false;
            }
            dropRecording(r);
            return true;
        });
    }

    private void dropRecording(Recording r) {
        if (r.exec != null) {
            device.synchronize();
            device.destroy(r.exec);
            r.exec = null;
        }
    }

    @Override
    public void zero(List<Tensor> tensors) {
        if (tensors.isEmpty()) {
            return;
        }
        zeroTable = tensorTable(zeroTable, tensors);
        launchGrid("zero_multi", zeroTable.grid(), 1, THREADS, 0, zeroTable.recordsAddress(),
                zeroTable.chunkStartAddress(), zeroTable.count, zeroTable.chunks);
        tensors.forEach(t -> cuda(t).written());
    }

    /** The multi-tensor table of {@code tensors} as the kernels' struct MtTensor (x, n, dt, pad), reusing previous. */
    private MultiTensorTable tensorTable(MultiTensorTable previous, List<Tensor> tensors) {
        ByteBuffer records = MultiTensorTable.records(tensors.size(), 24);
        long[] counts = new long[tensors.size()];
        for (int i = 0; i < counts.length; i++) {
            CudaTensor x = cuda(tensors.get(i));
            records.putLong(x.address).putLong(x.count).putInt(x.code()).putInt(0);
            counts[i] = x.count;
        }
        return MultiTensorTable.of(device, previous, records, counts);
    }

    // ---- N:M sparse weights ---------------------------------------------------------------------------------------

    @Override
    public SparseLinear sparseLinear(double[] denseWeight, int dOut, int dIn, NmPattern pattern, boolean doublePrune,
            DType dtype) {
        if (denseWeight.length != dOut * dIn) {
            throw new IllegalArgumentException("dense weight has " + denseWeight.length + " values, expected "
                    + dOut + "×" + dIn);
        }
        NmMasks.requireDivisible(dIn, pattern, "columns (d_in)");
        if (doublePrune) {
            NmMasks.requireDivisible(dOut, pattern, "rows (d_out)");
        }
        PackedMasks.requireSupported(pattern);
        int k = dIn / pattern.m() * pattern.n();
        // The row mask is chosen on the device from the fp64 weights: the same magnitudes the CPU compares.
        long denseBytes = 8L * dOut * dIn;
        long dense = scratch(SLOT_DENSE, denseBytes);
        device.copyToDevice(scratch[SLOT_DENSE], Pointer.to(denseWeight), denseBytes);
        DevicePointer rowKept = allocateZeroed(PackedMasks.rowMaskBytes(dOut, dIn, pattern));
        launch1d("nm_row_prune", blocks((long) dOut * (dIn / pattern.m())), rowKept.address(), dense,
                CudaTensor.code(DType.F64), dOut, dIn, pattern.n(), pattern.m());
        CudaTensor values = (CudaTensor) zeros(dtype, dOut, k);
        launch1d("gather_kept", blocks((long) dOut * k), values.address, values.code(), dense,
                CudaTensor.code(DType.F64), rowKept.address(), dOut, dIn, k, pattern.n(), pattern.m());
        CudaSparseLinear w = newSparseLinear(values, rowKept, dOut, dIn, pattern, doublePrune);
        rebuildOperands(w, true);
        return w;
    }

    @Override
    public SparseLinear restoreSparseLinear(double[] values, int[] rowKeptIndices, byte[] columnMask, int dOut,
            int dIn, NmPattern pattern, boolean doublePrune, DType dtype) {
        int k = dIn / pattern.m() * pattern.n();
        if (values.length != dOut * k || rowKeptIndices.length != dOut * k) {
            throw new IllegalArgumentException("sparse layer " + dOut + "×" + dIn + " at " + pattern + " needs "
                    + dOut * k + " values and row-mask indices, got " + values.length + " and "
                    + rowKeptIndices.length);
        }
        // Converted and checked on the host before anything is allocated (PackedMasks).
        byte[] offsets = PackedMasks.rowOffsets(rowKeptIndices, dOut, dIn, pattern);
        int[] columnWords = null;
        if (doublePrune) {
            if (columnMask == null || columnMask.length != dOut * dIn) {
                throw new IllegalArgumentException("a double-pruned layer needs its " + dOut + "×" + dIn
                        + " column mask");
            }
            // As in sparseLinear: a refresh of the column mask needs whole groups along d_out.
            NmMasks.requireDivisible(dOut, pattern, "rows (d_out)");
            columnWords = PackedMasks.packColumnMask(columnMask, dOut, dIn);
        }
        CudaTensor v = (CudaTensor) zeros(dtype, dOut, k);
        upload(v, values);
        DevicePointer kept = allocate(offsets.length);
        device.copyToDevice(kept, Pointer.to(offsets), offsets.length);
        CudaSparseLinear w = newSparseLinear(v, kept, dOut, dIn, pattern, doublePrune);
        if (doublePrune) {
            device.copyToDevice(w.columnMask, Pointer.to(columnWords), 4L * columnWords.length);
        }
        rebuildOperands(w, false);
        return w;
    }

    private CudaSparseLinear newSparseLinear(CudaTensor values, DevicePointer rowKept, int dOut, int dIn,
            NmPattern pattern, boolean doublePrune) {
        DevicePointer mask = allocateZeroed(4 * PackedMasks.columnMaskWords(dOut, dIn));
        boolean sparseKernels = precision == Precision.BF16 && CudaSparseLinear.fitsTwoFour(pattern)
                && dOut % 32 == 0 && dIn % 32 == 0;
        CudaSparseLinear w = new CudaSparseLinear(values, rowKept, mask, dOut, dIn, pattern, doublePrune,
                sparseKernels);
        int k = w.keptPerRow();
        if (!doublePrune) {
            launch1d("mark_row_kept", blocks((long) dOut * k), mask.address(), rowKept.address(), dOut, dIn, k,
                    pattern.n(), pattern.m());
        }
        sparseLayers.add(w);
        return w;
    }

    @Override
    public void updateSparseOperands(SparseLinear weight, boolean refreshColumnMask) {
        rebuildOperands(sparse(weight), refreshColumnMask);
    }

    /** After the update (docs/method.md): forward operand from the new values; column mask refreshed or kept; Wᵀ. */
    private void rebuildOperands(CudaSparseLinear w, boolean refreshColumnMask) {
        int dOut = w.dOut();
        int dIn = w.dIn();
        int k = w.keptPerRow();
        long n = (long) dOut * dIn;
        NmPattern p = w.pattern();
        if (w.doublePrune() && refreshColumnMask) {
            if (32 % p.m() == 0) {
                launchGrid("nm_column_prune_kept", ceil(dIn, PRUNE_COLUMNS), ceil(dOut, 32), PRUNE_COLUMNS, 0,
                        w.columnMask.address(), w.values.address, w.values.code(), w.rowKept.address(), dOut, dIn,
                        p.n(), p.m());
            } else {
                long dense = scatterDense(w, DType.F32, null, false);
                launch1d("nm_column_prune", blocks(PackedMasks.columnMaskWords(dOut, dIn)), w.columnMask.address(),
                        dense, CudaTensor.code(DType.F32), dOut, dIn, p.n(), p.m());
            }
        }
        if (w.sparseKernels) {
            if (w.forward == null) {
                w.forward = cusparse.operand(dOut, dIn);
            }
            if (CudaSparseLinear.exactlyTwoOfFour(p)) {
                if (!w.forwardSupportCompressed) {
                    // Compress the support (ones at kept positions) once: the metadata is then the row mask itself,
                    // even where a kept value is 0; the values are written in place from now on.
                    long support = scratch(SLOT_DENSE, 2 * n);
                    device.memsetZero(scratch[SLOT_DENSE], 2 * n);
                    launch1d("scatter_kept", blocks((long) dOut * k), support, CudaTensor.code(DType.BF16),
                            onesLike(dOut * k), CudaTensor.code(DType.F32), w.rowKept.address(), 0L, dOut, dIn, k,
                            p.n(), p.m(), 0);
                    w.forward.compress(support);
                    w.forwardSupportCompressed = true;
                    // The value region is then the kept values' bf16 copy, in their order: AdamW writes it in the
                    // same pass as the values, and only other writes (uploads, collectives) need the pass below.
                    w.values.keepsBf16Copy = true;
                    w.values.bf16Copy = w.forward.compressed;
                    w.values.bf16CopyBorrowed = true;
                    w.values.bf16CopyCurrent = false;
                }
                if (!w.values.bf16CopyCurrent) {
                    launch1d("write_compressed_values", blocks((long) dOut * k), w.forward.compressed.address(),
                            w.values.address, w.values.code(), (long) dOut * k);
                    w.values.bf16CopyCurrent = true;
                }
            } else {
                long denseForward = scatterDense(w, DType.BF16, null, false);
                device.timed("compress fwd", () -> w.forward.compress(denseForward));
            }
            if (w.doublePrune() && !Boolean.TRUE.equals(w.dxOnDense)) {
                if (w.backward == null) {
                    w.backward = cusparse.operand(dIn, dOut);
                }
                if (CudaSparseLinear.exactlyTwoOfFour(p)) {
                    // The column mask keeps at most 2 of every 4 along d_out: its support, padded to exactly 2, is
                    // compressed once per mask, and between refreshes the values are written in place.
                    if (refreshColumnMask || !w.backwardSupportCompressed) {
                        CompressedMetadata.Layout layout = ownMetadata ? metadata.layout(dOut, dIn) : null;
                        if (layout != null) {
                            // The metadata straight from the column mask (the values follow below): no support, no
                            // compress.
                            metadata.write(layout, w.backward.compressed.address(), w.columnMask.address(), dOut, dIn,
                                    errorWord.address());
                        } else {
                            long support = scratch(SLOT_DENSE, 2 * n);
                            launch1d("column_mask_support_transposed", blocks(n / 4), support,
                                    w.columnMask.address(), dOut, dIn, errorWord.address());
                            device.timed("compress dX support", () -> w.backward.compress(support));
                        }
                        w.backwardSupportCompressed = true;
                    }
                    // Read from the forward operand's value region, the kept values' current bf16 copy (written just
                    // above or by AdamW): half the bytes of the fp32 values, and the same bf16 bits.
                    launchGrid("write_compressed_transposed_values", ceil(dIn, 32), ceil(dOut / 4, 32), THREADS, 0,
                            w.backward.compressed.address(), w.forward.compressed.address(),
                            CudaTensor.code(DType.BF16), w.rowKept.address(), w.columnMask.address(), dOut, dIn,
                            p.n(), p.m());
                } else {
                    long denseBackward = scatterDense(w, DType.BF16, w.columnMask, true);
                    device.timed("compress dX operand", () -> w.backward.compress(denseBackward));
                }
            }
        }
        DType gemmType = gemmType();
        long bytes = n * gemmType.bytes();
        if (!w.sparseKernels) {
            if (w.denseForward == null) {
                w.denseForward = allocate(bytes);
            }
            device.memsetZero(w.denseForward, bytes);
            launch1d("scatter_kept", blocks((long) dOut * k), w.denseForward.address(), CudaTensor.code(gemmType),
                    w.values.address, w.values.code(), w.rowKept.address(), 0L, dOut, dIn, k, p.n(), p.m(), 0);
        }
        if (!w.sparseKernels || !w.doublePrune() || Boolean.TRUE.equals(w.dxOnDense)) {
            writeDenseBackward(w);
        }
    }

    /** The masked dense backward operand W^{R,C} (or W^R without double pruning), d_out × d_in in the GEMM type. */
    private void writeDenseBackward(CudaSparseLinear w) {
        long bytes = (long) w.dOut() * w.dIn() * gemmType().bytes();
        if (w.denseBackward == null) {
            w.denseBackward = allocate(bytes);
        }
        device.memsetZero(w.denseBackward, bytes);
        int k = w.keptPerRow();
        launch1d("scatter_kept", blocks((long) w.dOut() * k), w.denseBackward.address(), CudaTensor.code(gemmType()),
                w.values.address, w.values.code(), w.rowKept.address(), w.columnMask.address(), w.dOut(), w.dIn(), k,
                w.pattern().n(), w.pattern().m(), 0);
    }

    /** W^R (or with a mask its masked transpose) as a dense matrix in the shared dense scratch; returns its address. */
    private long scatterDense(CudaSparseLinear w, DType type, DevicePointer mask, boolean transpose) {
        return scatterDense(w, type, mask, transpose, 0);
    }

    /** As above, followed by {@code zeroRows} rows of zeros (rows of dIn: for operands stacked below W^R). */
    private long scatterDense(CudaSparseLinear w, DType type, DevicePointer mask, boolean transpose, int zeroRows) {
        long n = (long) (w.dOut() + zeroRows) * w.dIn();
        long bytes = n * type.bytes();
        long dense = scratch(SLOT_DENSE, bytes);
        device.memsetZero(scratch[SLOT_DENSE], bytes);
        int k = w.keptPerRow();
        launch1d("scatter_kept", blocks((long) w.dOut() * k), dense, CudaTensor.code(type), w.values.address,
                w.values.code(), w.rowKept.address(), mask == null ? 0L : mask.address(), w.dOut(), w.dIn(), k,
                w.pattern().n(), w.pattern().m(), transpose ? 1 : 0);
        return dense;
    }

    private CudaTensor ones;

    /** A device vector of at least n fp32 ones (the support matrix's values). */
    private long onesLike(long n) {
        if (ones == null || ones.count < n) {
            ones = (CudaTensor) zeros(DType.F32, Math.toIntExact(n));
            float[] f = new float[Math.toIntExact(n)];
            Arrays.fill(f, 1f);
            device.copyToDevice(ones.pointer, Pointer.to(f), 4L * n);
        }
        return ones.address;
    }

    @Override
    public int[] rowKeptIndices(SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        checkErrorWord();
        byte[] offsets = downloadBytes(w.rowKept, PackedMasks.rowMaskBytes(w.dOut(), w.dIn(), w.pattern()));
        return PackedMasks.rowIndices(offsets, w.dOut(), w.dIn(), w.pattern());
    }

    @Override
    public byte[] columnMask(SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        int[] words = new int[Math.toIntExact(PackedMasks.columnMaskWords(w.dOut(), w.dIn()))];
        device.copyToHost(Pointer.to(words), w.columnMask, 4L * words.length);
        return PackedMasks.unpackColumnMask(words, w.dOut(), w.dIn());
    }

    /** The compressed forward operand's bytes (values then metadata), for the layout tests. */
    byte[] compressedForward(SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        return downloadBytes(w.forward.compressed, w.forward.compressedBytes);
    }

    /** The compressed backward operand's bytes (values then metadata); null where dX does not run on it. */
    byte[] compressedBackward(SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        checkErrorWord();
        return w.backward == null ? null : downloadBytes(w.backward.compressed, w.backward.compressedBytes);
    }

    /** Turns our metadata writer on or off for later refreshes (tests of both paths; they restore it). */
    void writeOwnMetadata(boolean on) {
        ownMetadata = on;
    }

    boolean writesOwnMetadata() {
        return ownMetadata;
    }

    /** Whether a d_out × d_in layer's backward operand has a verified metadata layout (learned now if not tried). */
    boolean ownMetadataVerified(int dOut, int dIn) {
        return metadata.layout(dOut, dIn) != null;
    }

    /** Compresses W^R afresh from its dense form into a new buffer and returns its bytes (layout tests). */
    byte[] freshlyCompressedForward(SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        CusparseLt.Operand fresh = cusparse.operand(w.dOut(), w.dIn());
        try {
            fresh.compress(scatterDense(w, DType.BF16, null, false));
            return downloadBytes(fresh.compressed, fresh.compressedBytes);
        } finally {
            device.synchronize();
            fresh.free();
        }
    }

    // ---- layers ---------------------------------------------------------------------------------------------------

    @Override
    public void embeddingForward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, int T) {
        embed(out, tokens, wte, wpe, B, T, 0L);
    }

    @Override
    public void embeddingForwardAt(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, Tensor position) {
        embed(out, tokens, wte, wpe, B, 1, positionAddress(position, "embeddingForwardAt"));
    }

    /**
     * B·T rows at positions r mod T, or, for a decoding step, all at the position the kernel reads from device address
     * {@code position} (not 0).
     */
    private void embed(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, int T, long position) {
        CudaTensor o = cuda(out);
        CudaTensor te = cuda(wte);
        CudaTensor pe = cuda(wpe);
        int C = te.shape[1];
        int V = te.shape[0];
        launch1d("embedding_forward", blocks((long) B * T * C), o.address, o.code(), cuda(tokens).address, te.address,
                te.code(), pe.address, pe.code(), B, T, C, V, position, pe.shape[0], errorWord.address());
    }

    @Override
    public void embeddingBackward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int B, int T) {
        CudaTensor dte = cuda(dwte);
        CudaTensor dpe = cuda(dwpe);
        CudaTensor d = cuda(dout);
        int C = dte.shape[1];
        CudaTensor tok = cuda(tokens);
        if (tok.buckets == null || tok.count != (long) B * T) {
            launchGrid("embedding_backward", ceil(C, 64), 1, 64, 0, dte.address, dte.code(), dpe.address, dpe.code(),
                    d.address, d.code(), tok.address, B, T, C);
            return;
        }
        CudaTensor.TokenBuckets k = tok.buckets;
        // A recorded pass replays with other tokens, so it covers every position (the kernel reads the count).
        int rows = B * T;
        launchGrid("embedding_backward_wte_buckets", ceil(C, 128),
                Math.min(device.capturing() ? rows : k.distinct(), MAX_GRID_Y), 128, 0,
                dte.address, dte.code(), d.address, d.code(), k.tokens().address, k.starts().address,
                k.rows().address, C, rows);
        launch1d("embedding_backward_wpe", blocks((long) T * C), dpe.address, dpe.code(), d.address, d.code(), B, T,
                C);
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias) {
        CudaTensor o = cuda(out);
        CudaTensor mu = cuda(mean);
        CudaTensor rs = cuda(rstd);
        CudaTensor x = cuda(inp);
        CudaTensor w = cuda(weight);
        CudaTensor b = cuda(bias);
        int C = Math.toIntExact(w.count);
        int rows = Math.toIntExact(x.count / C);
        int vectorsPerLane = layerNormVectorsPerLane(C, o, x, mu, rs);
        if (vectorsPerLane > 0) {
            launchGrid("layernorm_forward_bf16_" + vectorsPerLane, ceil(rows, THREADS / 32), 1, THREADS, 0, o.address,
                    mu.address, rs.address, x.address, w.address, w.code(), b.address, b.code(), rows, C);
            return;
        }
        launchGrid("layernorm_forward", ceil(rows, THREADS / 32), 1, THREADS, 0, o.address, o.code(), mu.address,
                mu.code(), rs.address, rs.code(), x.address, x.code(), w.address, w.code(), b.address, b.code(), rows,
                C);
    }

    /**
     * residual = a + b and its LayerNorm in one pass where the bf16 LayerNorm kernels run (one row per warp in
     * registers): the residual is written and normalised from the registers, not read back; the same bits as the two
     * operations. Otherwise the two operations.
     */
    @Override
    public void residualLayerNormForward(Tensor residual, Tensor out, Tensor mean, Tensor rstd, Tensor a, Tensor b,
            Tensor weight, Tensor bias) {
        CudaTensor res = cuda(residual);
        CudaTensor w = cuda(weight);
        int C = Math.toIntExact(w.count);
        int vectorsPerLane = layerNormVectorsPerLane(C, cuda(out), res, cuda(a), cuda(b), cuda(mean), cuda(rstd));
        if (vectorsPerLane == 0 || cuda(a).count != res.count || cuda(b).count != res.count) {
            Backend.super.residualLayerNormForward(residual, out, mean, rstd, a, b, weight, bias);
            return;
        }
        int rows = Math.toIntExact(res.count / C);
        launchGrid("residual_layernorm_forward_bf16_" + vectorsPerLane, ceil(rows, THREADS / 32), 1, THREADS, 0,
                res.address, cuda(out).address, cuda(mean).address, cuda(rstd).address, cuda(a).address,
                cuda(b).address, w.address, w.code(), cuda(bias).address, cuda(bias).code(), rows, C);
    }

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
            Tensor mean, Tensor rstd) {
        CudaTensor dx = cuda(dinp);
        CudaTensor dw = cuda(dweight);
        CudaTensor db = cuda(dbias);
        CudaTensor dy = cuda(dout);
        CudaTensor x = cuda(inp);
        CudaTensor w = cuda(weight);
        CudaTensor mu = cuda(mean);
        CudaTensor rs = cuda(rstd);
        int C = Math.toIntExact(w.count);
        int rows = Math.toIntExact(x.count / C);
        if (layerNormVectorsPerLane(C, dx, dy, x, mu, rs) > 0) {
            // One pass: the input gradient and a partial of the parameter gradients per block, in a fixed grid.
            LayerNormBackwardGrid grid = layerNormBackwardGrid(C);
            int blocks = Math.min(grid.blocks(), ceil(rows, grid.warps()));
            long partial = scratch(SLOT_PARTIAL, 4L * 2 * blocks * C);
            launchGrid(grid.kernel(), blocks, 1, 32 * grid.warps(), grid.sharedBytes(), dx.address, partial,
                    dy.address, x.address, w.address, w.code(), mu.address, rs.address, rows, C);
            addParameterGradientPartials(dw, db, partial, blocks, C);
            return;
        }
        // The general kernels (fp32, C not a multiple of 8 or above 2560): the input gradient, then the parameter
        // gradients' partials over chunks of rows (dout and inp in 16-byte vectors where they are bf16).
        launchGrid("layernorm_backward_input", ceil(rows, THREADS / 32), 1, THREADS, 0, dx.address, dx.code(),
                dy.address, dy.code(), x.address, x.code(), w.address, w.code(), mu.address, mu.code(), rs.address,
                rs.code(), rows, C);
        boolean vectors = C % 8 == 0 && allBf16InVectors(x.count, dy, x) && mu.dtype == DType.F32
                && rs.dtype == DType.F32;
        int chunkRows = vectors ? COLUMN_SUMS_CHUNK_ROWS : REDUCE_CHUNK_ROWS;
        int chunks = ceil(rows, chunkRows);
        long partial = scratch(SLOT_PARTIAL, 4L * 2 * chunks * C);
        if (vectors) {
            launchGrid("layernorm_backward_params_partial_bf16", ceil(C / 8, 32), chunks, THREADS, 0, partial,
                    dy.address, x.address, mu.address, rs.address, rows, C, chunkRows, chunks);
        } else {
            launchGrid("layernorm_backward_params_partial", ceil(C, THREADS), chunks, THREADS, 0, partial, dy.address,
                    dy.code(), x.address, x.code(), mu.address, mu.code(), rs.address, rs.code(), rows, C,
                    REDUCE_CHUNK_ROWS, chunks);
        }
        addParameterGradientPartials(dw, db, partial, chunks, C);
    }

    /** dweight += Σ of the partials' first {@code chunks} rows of C, dbias += Σ of the next {@code chunks}. */
    private void addParameterGradientPartials(CudaTensor dw, CudaTensor db, long partial, int chunks, int C) {
        launchGrid("column_sums_finish", ceil(C, 32), 1, THREADS, 0, dw.address, dw.code(), partial, chunks, C);
        launchGrid("column_sums_finish", ceil(C, 32), 1, THREADS, 0, db.address, db.code(),
                partial + 4L * chunks * C, chunks, C);
    }

    /**
     * The launch of layernorm_backward_bf16_N at one C: warps per block, their dynamic shared memory, and the blocks the
     * device holds at once ({@code blocks}; a launch takes fewer only where some blocks would get no row).
     * The warps per block give the most warps per multiprocessor the occupancy calculator allows (shared memory and
     * registers bound them), and of equals the largest blocks (fewest partials to add). It depends on the device, the
     * kernels and C alone, so the parameter gradients add in the same order in every step of a run.
     */
    record LayerNormBackwardGrid(String kernel, int warps, int sharedBytes, int blocks) {}

    /** The fused LayerNorm backward's grid at each C it has run at (see {@link LayerNormBackwardGrid}). */
    private final Map<Integer, LayerNormBackwardGrid> layerNormBackwardGrids = new HashMap<>();

    LayerNormBackwardGrid layerNormBackwardGrid(int C) {
        return layerNormBackwardGrids.computeIfAbsent(C, c -> {
            String kernel = "layernorm_backward_bf16_" + ceil(c / 8, 32);
            int warpBytes = LAYERNORM_BACKWARD_WARP_BYTES * (c / 8);
            int most = Math.min(device.maxThreadsPerBlock(kernel) / 32, device.dynamicSharedLimit(kernel) / warpBytes);
            int bestWarps = 0;
            int bestPerMultiprocessor = 0;
            for (int warps = 1; warps <= most; warps++) {
                int perMultiprocessor = device.blocksPerMultiprocessor(kernel, 32 * warps, warps * warpBytes);
                if (perMultiprocessor > 0 && warps * perMultiprocessor >= bestWarps * bestPerMultiprocessor) {
                    bestWarps = warps;
                    bestPerMultiprocessor = perMultiprocessor;
                }
            }
            if (bestWarps == 0) {
                throw new IllegalStateException(kernel + ": not one warp fits a block at C = " + c + " on "
                        + device.name() + " (" + warpBytes + " bytes of shared memory a warp)");
            }
            return new LayerNormBackwardGrid(kernel, bestWarps, bestWarps * warpBytes,
                    bestPerMultiprocessor * device.multiprocessors());
        });
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(inp);
        CudaTensor w = cuda(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        int rows = Math.toIntExact(x.count / dIn);
        requireCount(o, (long) rows * dOut, "matmulForward output");
        long epilogueBias = bias == null ? 0L : epilogueBias(o, cuda(bias));
        gemmRaw(o, x, false, operand(w, SLOT_B, gemmType()), true, rows, dOut, dIn, 1f, 0f, epilogueBias);
        if (bias != null && epilogueBias == 0L) {
            addBias(o, cuda(bias), rows, dOut);
        }
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight) {
        CudaTensor w = cuda(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        CudaTensor dy = cuda(dout);
        int rows = Math.toIntExact(dy.count / dOut);
        gemm(cuda(dinp), dy, false, w, false, rows, dIn, dOut, 1f, 0f);
        weightGradients(cuda(dweight), dbias == null ? null : cuda(dbias), dy, cuda(inp), dOut, dIn, rows);
    }

    /**
     * dweight += doutᵀ·inp, and dbias += the column sums of dout when it is not null: one GEMM where
     * {@link #biasGradientInGemm} says its epilogue can take the sums, else the GEMM and {@link #columnSums}.
     */
    private void weightGradients(CudaTensor dweight, CudaTensor dbias, CudaTensor dy, CudaTensor x, int dOut, int dIn,
            int rows) {
        if (dbias != null && dweight.dtype == DType.F32 && biasGradientInGemm(dbias, dOut, dIn, rows)) {
            gemmWithBiasGradient(dweight.address, 1f, dbias, dy, x, dOut, dIn, rows);
            return;
        }
        gemm(dweight, dy, true, x, false, dOut, dIn, rows, 1f, 1f);
        if (dbias != null) {
            columnSums(dbias, dy, rows, dOut);
        }
    }

    /** Off only in the parity test of the column-sum kernels, which the bias gradients otherwise no longer take. */
    private boolean biasGradientsInGemm = true;

    void sumBiasGradientsInGemm(boolean on) {
        biasGradientsInGemm = on;
    }

    /**
     * Whether the weight-gradient GEMM (fp32 output) also sums dout's columns for the bias gradient, with cuBLASLt's
     * BGRADB epilogue: it reads dout anyway, so the separate column-sum passes' reads of dout go (issue 13). In the
     * bf16 mode, for an fp32 bias gradient, where cuBLASLt offers the epilogue for the shape.
     */
    private boolean biasGradientInGemm(CudaTensor dbias, int dOut, int dIn, int rows) {
        return biasGradientsInGemm && precision == Precision.BF16 && dbias.dtype == DType.F32
                && cublas.offers(true, false, dOut, dIn, rows, CublasLt.CUDA_R_16BF, CublasLt.CUDA_R_32F,
                        CublasLt.Epilogue.BGRADB);
    }

    /**
     * fp32 dW (at {@code dw}) = doutᵀ·inp + beta·dW with the BGRADB epilogue: the column sums of dout go to fp32
     * scratch (the epilogue writes them) and are then added into dbias.
     */
    private void gemmWithBiasGradient(long dw, float beta, CudaTensor dbias, CudaTensor dy, CudaTensor x, int dOut,
            int dIn, int rows) {
        long sums = scratch(SLOT_BIAS, 4L * dOut);
        long a = operand(dy, SLOT_A, DType.BF16);
        long b = operand(x, SLOT_B, DType.BF16);
        device.timed("gemm " + dOut + "x" + dIn + "x" + rows + " At bgradb", () -> cublas.gemm(dw, a, true, b, false,
                dOut, dIn, rows, 1f, beta, CublasLt.CUDA_R_16BF, CublasLt.CUDA_R_32F, CublasLt.Epilogue.BGRADB,
                sums, 0L, device.streamHandle()));
        launch1d("add_into", blocks(dOut), dbias.address, dbias.code(), sums, CudaTensor.code(DType.F32), (long) dOut);
    }

    /**
     * One GEMM with cuBLASLt's GELU_AUX_BIAS epilogue (GELU_AUX without a bias), as llm.c's matmul_cublaslt: preGelu
     * (the aux matrix) = inp·weightᵀ + bias, out = gelu of it in fp32 before either is rounded to bf16; with no
     * preGelu (a forward with no backward) GELU_BIAS, which writes out alone. In the bf16 mode with bf16 outputs and
     * dOut a multiple of 8 (the aux matrix's leading dimension); otherwise the two operations.
     */
    @Override
    public void matmulGeluForward(Tensor out, Tensor preGelu, Tensor inp, Tensor weight, Tensor bias) {
        CudaTensor o = cuda(out);
        CudaTensor pre = preGelu == null ? null : cuda(preGelu);
        CudaTensor x = cuda(inp);
        CudaTensor w = cuda(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        if (!geluEpilogue(dOut, o, pre == null ? o : pre)) {
            Backend.super.matmulGeluForward(out, preGelu, inp, weight, bias);
            return;
        }
        int rows = Math.toIntExact(x.count / dIn);
        requireCount(o, (long) rows * dOut, "matmulGeluForward output");
        long b = bias == null ? 0L : operand(cuda(bias), SLOT_BIAS, DType.BF16);
        CublasLt.Epilogue epilogue;
        if (pre == null) {
            epilogue = b != 0L ? CublasLt.Epilogue.GELU_BIAS : CublasLt.Epilogue.GELU;
        } else {
            requireCount(pre, (long) rows * dOut, "matmulGeluForward preGelu");
            epilogue = b != 0L ? CublasLt.Epilogue.GELU_AUX_BIAS : CublasLt.Epilogue.GELU_AUX;
        }
        gemmEpilogue(o, x, false, operand(w, SLOT_B, DType.BF16), true, rows, dOut, dIn, epilogue, b,
                pre == null ? 0L : pre.address);
    }

    /**
     * The input-gradient GEMM with cuBLASLt's DGELU epilogue (aux = preGelu), as llm.c's: dinp = (dout·weight) ⊙
     * gelu'(preGelu), the product not rounded before the GELU gradient scales it; beta 0 (ADR 043). The weight and
     * bias gradients as {@link #matmulBackward}. Where {@link #matmulGeluForward} fuses; otherwise the two operations.
     */
    @Override
    public void matmulBackwardGelu(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
            Tensor weight, Tensor preGelu) {
        CudaTensor dx = cuda(dinp);
        CudaTensor pre = cuda(preGelu);
        CudaTensor w = cuda(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        if (!geluEpilogue(dIn, dx, pre)) {
            Backend.super.matmulBackwardGelu(dinp, dweight, dbias, dout, inp, weight, preGelu);
            return;
        }
        CudaTensor dy = cuda(dout);
        int rows = Math.toIntExact(dy.count / dOut);
        requireCount(dx, (long) rows * dIn, "matmulBackwardGelu dinp");
        requireCount(pre, (long) rows * dIn, "matmulBackwardGelu preGelu");
        gemmEpilogue(dx, dy, false, operand(w, SLOT_B, DType.BF16), false, rows, dIn, dOut, CublasLt.Epilogue.DGELU,
                0L, pre.address);
        weightGradients(cuda(dweight), dbias == null ? null : cuda(dbias), dy, cuda(inp), dOut, dIn, rows);
    }

    /**
     * Whether a GEMM with N output columns into {@code d} may run a GELU epilogue with {@code aux}: the bf16 mode (the
     * fp32 debug mode keeps the separate GELU kernels), both bf16 (the aux matrix is in D's type), N a multiple of 8.
     */
    private boolean geluEpilogue(int N, CudaTensor d, CudaTensor aux) {
        return precision == Precision.BF16 && d.dtype == DType.BF16 && aux.dtype == DType.BF16 && N % 8 == 0;
    }

    @Override
    public void sparseMatmulForward(Tensor out, Tensor inp, SparseLinear weight, Tensor bias) {
        CudaSparseLinear w = sparse(weight);
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(inp);
        int rows = Math.toIntExact(x.count / w.dIn());
        requireCount(o, (long) rows * w.dOut(), "sparseMatmulForward output");
        CudaTensor b = bias == null ? null : cuda(bias);
        if (onFewRowsKernel(w, rows)) {
            fewRowsForward(o.address, o.dtype, x, w, b, rows);
        } else if (w.sparseKernels) {
            // Off the few-rows kernel, a decoding step's few rows are padded to the 2:4 kernels' multiple of 16: it is
            // bound by reading the weight, and its output rows are dropped.
            int n = CusparseLt.fits(w.dOut(), w.dIn(), rows) ? rows : ceil(rows, SPARSE_ROW_MULTIPLE)
                    * SPARSE_ROW_MULTIPLE;
            long in = n == rows ? operand(x, SLOT_A, DType.BF16) : paddedOperand(x, rows, n, w.dIn());
            // Straight into a bf16 output, the bias is added in cuSPARSELt's epilogue (one pass over the output, as a
            // dense layer's). That epilogue reads a bias of D's type at the address fixed in the plan: the weight's
            // own bf16 copy, which the optimizer rewrites in place. Any other bias goes in a pass of its own.
            boolean direct = n == rows && o.dtype == DType.BF16;
            long epilogueBias = direct && b != null && (b.dtype == DType.BF16 || b.keepsBf16Copy)
                    ? operand(b, SLOT_BIAS, DType.BF16) : 0L;
            CusparseLt.Plan plan = w.forwardPlans.computeIfAbsent(new CudaSparseLinear.ForwardPlanKey(n, epilogueBias),
                    key -> cusparse.plan(w.forward, key.rows(), key.bias()));
            String what = "spmm fwd " + w.dOut() + "x" + w.dIn() + " n=" + n + (epilogueBias != 0L ? " +bias" : "");
            if (direct) {
                device.timed(what, () -> plan.multiply(w.forward, in, o.address));
                if (b != null && epilogueBias == 0L) {
                    addBias(o, b, rows, w.dOut());
                }
            } else {
                long d = scratch(SLOT_D, 2L * n * w.dOut());
                device.timed(what, () -> plan.multiply(w.forward, in, d));
                launch1d("linear_epilogue", blocks((long) rows * w.dOut()), o.address, o.code(), d,
                        CudaTensor.code(DType.BF16), b == null ? 0L : b.address, b == null ? 0 : b.code(),
                        (long) rows, w.dOut());
            }
        } else {
            // Masked dense: out = inp · (W^R)ᵀ.
            long epilogueBias = b == null ? 0L : epilogueBias(o, b);
            gemmRaw(o, x, false, w.denseForward.address(), true, rows, w.dOut(), w.dIn(), 1f, 0f, epilogueBias);
            if (b != null && epilogueBias == 0L) {
                addBias(o, b, rows, w.dOut());
            }
        }
    }

    @Override
    public void sparseMatmulBackward(Tensor dinp, Tensor dvalues, Tensor dbias, Tensor dout, Tensor inp,
            SparseLinear weight) {
        CudaSparseLinear w = sparse(weight);
        CudaTensor dx = cuda(dinp);
        CudaTensor dy = cuda(dout);
        CudaTensor x = cuda(inp);
        int dOut = w.dOut();
        int dIn = w.dIn();
        int rows = Math.toIntExact(dy.count / dOut);
        if (w.sparseKernels && w.doublePrune() && !dxOnDense(w, rows, dy, dx)) {
            requireSparseBatch(w, rows);
            // (dX)ᵀ = (W^{R,C})ᵀ·(dY)ᵀ on the 2:4 tensor cores, written over dinp.
            CusparseLt.Plan plan = w.backwardPlans.computeIfAbsent(rows, r -> cusparse.plan(w.backward, r));
            long g = operand(dy, SLOT_A, DType.BF16);
            String what = "spmm dX " + dIn + "x" + dOut + " n=" + rows;
            if (dx.dtype == DType.BF16) {
                device.timed(what, () -> plan.multiply(w.backward, g, dx.address));
            } else {
                long d = scratch(SLOT_D, 2L * rows * dIn);
                device.timed(what, () -> plan.multiply(w.backward, g, d));
                launch1d("convert", blocks((long) rows * dIn), dx.address, dx.code(), d,
                        CudaTensor.code(DType.BF16), (long) rows * dIn);
            }
        } else {
            gemmRaw(dx, dy, false, w.denseBackward.address(), false, rows, dIn, dOut, 1f, 0f, 0L);
        }
        // Dense dYᵀ·X into fp32 scratch, then only the row mask's kept positions are added (docs/method.md: ∇W).
        CudaTensor dv = cuda(dvalues);
        long dense = scratch(SLOT_DENSE, 4L * dOut * dIn);
        CudaTensor db = dbias == null ? null : cuda(dbias);
        boolean biasInGemm = db != null && biasGradientInGemm(db, dOut, dIn, rows);
        if (biasInGemm) {
            gemmWithBiasGradient(dense, 0f, db, dy, x, dOut, dIn, rows);
        } else {
            gemmInto(dense, DType.F32, dy, true, x, false, dOut, dIn, rows, 1f, 0f);
        }
        int k = w.keptPerRow();
        if (dv.dtype == DType.F32 && w.pattern().n() == 2 && w.pattern().m() == 4 && dv.address % 8 == 0) {
            long groups = (long) dOut * dIn / 4;
            launch1d("gather_kept_add_f32_2of4", blocks(groups), dv.address, dense, w.rowKept.address(), groups);
        } else {
            launch1d("gather_kept_add", blocks((long) dOut * k), dv.address, dv.code(), dense,
                    CudaTensor.code(DType.F32), w.rowKept.address(), dOut, dIn, k, w.pattern().n(), w.pattern().m());
        }
        if (db != null && !biasInGemm) {
            columnSums(db, dy, rows, dOut);
        }
    }

    /**
     * Whether a double-pruned 2:4 layer computes dX with the masked dense W^{R,C} instead of the 2:4 operand: decided at
     * the layer's first backward by timing both on its own dY (CUDA events, after a warm-up that includes each GEMM's
     * algorithm search), or taken from a recorded choice for its shape and batch width. At small shapes the 2:4 dX GEMM
     * is slower than the dense one (GPT-2 124M); a layer on dense dX keeps W^{R,C} dense (2 bytes per weight instead of
     * the compressed operand's 1.125) and no longer rewrites the compressed operand each step.
     */
    private boolean dxOnDense(CudaSparseLinear w, int rows, CudaTensor dy, CudaTensor dx) {
        if (w.dxOnDense != null) {
            return w.dxOnDense;
        }
        requireSparseBatch(w, rows);
        String key = dxChoiceKey(w.dIn(), w.dOut(), rows);
        String choice = dxChoices.get(key);
        if (choice == null) {
            writeDenseBackward(w);
            CusparseLt.Plan plan = w.backwardPlans.computeIfAbsent(rows, r -> cusparse.plan(w.backward, r));
            long g = operand(dy, SLOT_A, DType.BF16);
            long out = scratch(SLOT_D, 2L * rows * w.dIn());
            float sparseMs = device.eventMillis(() -> plan.multiply(w.backward, g, out), DX_TIMING_REPS);
            float denseMs = device.eventMillis(() -> gemmInto(out, DType.BF16, dy, false, w.denseBackward.address(),
                    false, rows, w.dIn(), w.dOut(), 1f, 0f, 0L), DX_TIMING_REPS);
            choice = denseMs < sparseMs ? "dense" : "2:4";
            dxChoices.put(key, choice);
        }
        w.dxOnDense = choice.equals("dense");
        if (w.dxOnDense) {
            if (w.denseBackward == null) {
                writeDenseBackward(w);
            }
            w.backwardPlans.values().forEach(CusparseLt.Plan::free);
            w.backwardPlans.clear();
            w.backward.free();
            w.backward = null;
            w.backwardSupportCompressed = false;
        } else if (w.denseBackward != null) {
            free(w.denseBackward);
            w.denseBackward = null;
        }
        return w.dxOnDense;
    }

    private static String dxChoiceKey(int dIn, int dOut, int rows) {
        return DX_CHOICE_PREFIX + dIn + "x" + dOut + " n=" + rows;
    }

    /**
     * Sets the dX GEMM of double-pruned layers of this shape, as a recorded choice would, for layers not yet decided
     * (the tests take both paths this way, whatever the timing would pick).
     */
    void chooseDx(int dIn, int dOut, int rows, boolean dense) {
        dxChoices.put(dxChoiceKey(dIn, dOut, rows), dense ? "dense" : "2:4");
    }

    /** Turns the few-rows forward on or off ({@link #fewRowsKernel}); passes recorded before are dropped. */
    void decodeOnFewRowsKernel(boolean on) {
        fewRowsKernel = on;
        dropRecordings();
    }

    boolean decodesOnFewRowsKernel() {
        return fewRowsKernel;
    }

    /** Whether a forward of {@code rows} runs on two_four_few_rows_forward: 1 to 16 rows of a 2:4 layer on its kernels. */
    private boolean onFewRowsKernel(CudaSparseLinear w, int rows) {
        NmPattern p = w.pattern();
        return fewRowsKernel && w.sparseKernels && p.n() == 2 && p.m() == 4 && rows >= 1 && rows <= FEW_ROWS_MAX;
    }

    /**
     * out = x·(W^R)ᵀ (+ bias) for at most 16 rows, at {@code out} in {@code outType} (rows × dOut): the layer's bf16
     * values (its compressed forward operand's value region) and its decode index, each byte read once.
     */
    private void fewRowsForward(long out, DType outType, CudaTensor x, CudaSparseLinear w, CudaTensor bias,
            int rows) {
        long in = operand(x, SLOT_A, DType.BF16);
        long values = operand(w.values, SLOT_B, DType.BF16);
        launchGrid("two_four_few_rows_forward", ceil(w.dOut(), FEW_ROWS_TILE), 1, FEW_ROWS_THREADS, 0, out,
                CudaTensor.code(outType), in, values, decodeIndex(w), bias == null ? 0L : bias.address,
                bias == null ? 0 : bias.code(), rows, w.dOut(), w.dIn());
    }

    /** The layer's decode index, built at its first use ({@link CudaSparseLinear#decodeIndex}). */
    private long decodeIndex(CudaSparseLinear w) {
        if (w.decodeIndex == null) {
            long words = (long) w.dOut() * w.dIn() / 16;
            w.decodeIndex = allocate(2 * words);
            launch1d("two_four_decode_index", blocks(words), w.decodeIndex.address(), w.rowKept.address(), words);
        }
        return w.decodeIndex.address();
    }

    private static void requireSparseBatch(CudaSparseLinear w, int rows) {
        if (!CusparseLt.fits(w.dOut(), w.dIn(), rows)) {
            throw new IllegalArgumentException("cuSPARSELt needs rows (batch×seq) divisible by 16 for a "
                    + w.dOut() + "×" + w.dIn() + " sparse layer, got " + rows);
        }
    }

    // ---- incremental decoding (KV cache) -----------------------------------------------------------------------------

    @Override
    public boolean supportsKvCache() {
        return true;
    }

    @Override
    public void kvCacheStore(Tensor keys, Tensor values, Tensor qkv, int B, Tensor position) {
        CudaTensor k = cuda(keys);
        CudaTensor v = cuda(values);
        CudaTensor x = cuda(qkv);
        requireCache(k, v);
        int C = k.shape[2];
        int maxT = k.shape[1];
        int n = Backend.kvCacheStoreRows(keys, qkv, B);
        launch1d("kv_cache_store", blocks((long) B * n * C), k.address, v.address, k.code(), x.address, x.code(), B, n,
                C, maxT, positionAddress(position, "kvCacheStore"), errorWord.address());
    }

    @Override
    public void attentionDecode(Tensor out, Tensor qkv, Tensor keys, Tensor values, int B, Tensor position,
            int heads) {
        CudaTensor k = cuda(keys);
        CudaTensor v = cuda(values);
        CudaTensor o = cuda(out);
        requireCache(k, v);
        int C = k.shape[2];
        int maxT = k.shape[1];
        int hs = C / heads;
        if (hs > DECODE_MAX_HEAD_SIZE) {
            throw new IllegalArgumentException("attentionDecode with head size " + hs + " (at most "
                    + DECODE_MAX_HEAD_SIZE + ")");
        }
        launchGrid("attention_decode", B * heads, 1, 32 * DECODE_WARPS, 0, o.address, o.code(), cuda(qkv).address,
                cuda(qkv).code(), k.address, v.address, k.code(), heads, hs, maxT,
                positionAddress(position, "attentionDecode"), (float) (1.0 / Math.sqrt(hs)), errorWord.address());
    }

    /**
     * Where a decoding operation's kernel reads its position: a one-element I32 tensor, so that a recorded step replays
     * at the position uploaded for it. The kernels check its range, since the host cannot read it without waiting.
     */
    private static long positionAddress(Tensor position, String operation) {
        CudaTensor p = cuda(position);
        if (p.dtype != DType.I32 || p.count != 1) {
            throw new IllegalArgumentException(operation + " reads its position from a one-element I32 tensor, got "
                    + p.dtype + " " + Arrays.toString(p.shape));
        }
        return p.address;
    }

    private static void requireCache(CudaTensor keys, CudaTensor values) {
        if (keys.shape.length != 3 || !Arrays.equals(keys.shape, values.shape) || keys.dtype != values.dtype) {
            throw new IllegalArgumentException("KV caches must be two B × maxT × C tensors of one type, got "
                    + Arrays.toString(keys.shape) + " " + keys.dtype + " and " + Arrays.toString(values.shape) + " "
                    + values.dtype);
        }
    }

    @Override
    public Tensor attentionState(int B, int T, int heads) {
        CudaTensor stats = (CudaTensor) zeros(DType.F32, 2, B, heads, T);
        return new AttentionState(B, T, heads, stats);
    }

    @Override
    public void attentionForward(Tensor out, Tensor state, Tensor qkv, int B, int T, int heads) {
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(qkv);
        AttentionState s = attention(state, B, T, heads);
        int C = x.shape[x.shape.length - 1] / 3;
        int hs = headSize(C, heads);
        float scale = (float) (1.0 / StrictMath.sqrt(hs));
        if (cudnnAttention(o, x)) {
            device.timed("cudnn attention forward", () -> cudnn.forward(o.address, s.stats.address, x.address, B, T,
                    heads, hs, scale));
            return;
        }
        if (s.outputCopy == null) {
            s.outputCopy = (CudaTensor) zeros(DType.F32, B * T, C);
        }
        if (tensorCoreAttention(hs)) {
            launchGrid("attention_forward_tc", ceil(T, 64), B * heads, 128, 0, o.address, o.code(), s.stats.address,
                    s.outputCopy.address, x.address, x.code(), B, T, heads, scale);
            return;
        }
        int warps = THREADS / 32;
        launchGrid("attention_forward_" + hs, ceil((long) B * heads * T, warps), 1, THREADS, warps * hs * 4, o.address,
                o.code(), s.stats.address, s.outputCopy.address, x.address, x.code(), B, T, heads, scale);
    }

    /** cuDNN's SDPA reads and writes bf16 rows; the bf16 mode stores activations so. */
    private boolean cudnnAttention(CudaTensor... rows) {
        return cudnn != null && Arrays.stream(rows).allMatch(t -> t.dtype == DType.BF16);
    }

    /** bf16 tensor-core tiles for head size 64 in the bf16 mode; the fp32 kernels otherwise (and in fp32 debug). */
    private boolean tensorCoreAttention(int hs) {
        return precision == Precision.BF16 && hs == 64 && device.computeCapability() >= 80;
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor state, int B, int T,
            int heads) {
        CudaTensor dx = cuda(dqkv);
        CudaTensor dy = cuda(dout);
        CudaTensor x = cuda(qkv);
        CudaTensor o = cuda(out);
        AttentionState s = attention(state, B, T, heads);
        int C = x.shape[x.shape.length - 1] / 3;
        int hs = headSize(C, heads);
        float scale = (float) (1.0 / StrictMath.sqrt(hs));
        long lse = s.stats.address;
        if (cudnnAttention(dx, dy, x, o)) {
            device.timed("cudnn attention backward", () -> cudnn.backward(dx.address, dy.address, x.address,
                    o.address, lse, B, T, heads, hs, scale));
            return;
        }
        // The project's kernels add into dqkv; the operation overwrites it.
        zero(dx);
        int warps = THREADS / 32;
        long dsum = s.stats.address + 4L * B * heads * T;
        if (tensorCoreAttention(hs)) {
            launchGrid("attention_backward_dsum", ceil((long) B * heads * T, warps), 1, THREADS, 0, dsum, dy.address,
                    dy.code(), s.outputCopy.address, B, T, heads);
            launchGrid("attention_backward_dq_tc", ceil(T, 64), B * heads, 128, 0, dx.address, dx.code(), dsum,
                    dy.address, dy.code(), x.address, x.code(), lse, B, T, heads, scale);
            launchGrid("attention_backward_dkdv_tc", ceil(T, 64), B * heads, 128, 0, dx.address, dx.code(), dsum,
                    dy.address, dy.code(), x.address, x.code(), lse, B, T, heads, scale);
            return;
        }
        int grid = ceil((long) B * heads * T, warps);
        launchGrid("attention_backward_dq_" + hs, grid, 1, THREADS, warps * 2 * hs * 4, dx.address, dx.code(), dsum,
                dy.address, dy.code(), x.address, x.code(), lse, s.outputCopy.address, B, T, heads, scale);
        launchGrid("attention_backward_dkdv_" + hs, grid, 1, THREADS, warps * 2 * hs * 4, dx.address, dx.code(), dsum,
                dy.address, dy.code(), x.address, x.code(), lse, B, T, heads, scale);
    }

    private static int headSize(int C, int heads) {
        int hs = C / heads;
        if (C % heads != 0 || (hs != 32 && hs != 64 && hs != 96 && hs != 128)) {
            throw new IllegalArgumentException("the CUDA attention kernels take head sizes 32, 64, 96 or 128; C = " + C
                    + " over " + heads + " heads");
        }
        return hs;
    }

    private static AttentionState attention(Tensor state, int B, int T, int heads) {
        if (!(state instanceof AttentionState s) || s.B != B || s.T != T || s.heads != heads) {
            throw new IllegalArgumentException("attention state not made by attentionState(" + B + ", " + T + ", "
                    + heads + ") of this backend: " + state);
        }
        return s;
    }

    @Override
    public void geluForward(Tensor out, Tensor inp) {
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(inp);
        if (allBf16InVectors(x.count, o, x)) {
            launch1d("gelu_forward_bf16", blocks(x.count / 8), o.address, x.address, x.count / 8);
            return;
        }
        launch1d("gelu_forward", blocks(x.count), o.address, o.code(), x.address, x.code(), x.count);
    }

    @Override
    public void geluBackward(Tensor dinp, Tensor inp, Tensor dout) {
        CudaTensor dx = cuda(dinp);
        CudaTensor x = cuda(inp);
        CudaTensor dy = cuda(dout);
        if (allBf16InVectors(x.count, dx, x, dy)) {
            launch1d("gelu_backward_bf16", blocks(x.count / 8), dx.address, x.address, dy.address, x.count / 8);
            return;
        }
        launch1d("gelu_backward", blocks(x.count), dx.address, dx.code(), x.address, x.code(), dy.address, dy.code(),
                x.count);
    }

    @Override
    public void residualForward(Tensor out, Tensor a, Tensor b) {
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(a);
        CudaTensor y = cuda(b);
        if (allBf16InVectors(o.count, o, x, y)) {
            launch1d("residual_forward_bf16", blocks(o.count / 8), o.address, x.address, y.address, o.count / 8);
            return;
        }
        launch1d("residual_forward", blocks(o.count), o.address, o.code(), x.address, x.code(), y.address, y.code(),
                o.count);
    }

    @Override
    public void crossEntropyForwardBackward(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets,
            double gradScale) {
        CudaTensor loss = cuda(losses);
        CudaTensor z = cuda(logits);
        CudaTensor dz = dlogits == null ? null : cuda(dlogits);
        int V = z.shape[z.shape.length - 1];
        int rows = Math.toIntExact(z.count / V);
        if (z.dtype == DType.BF16 && (dz == null || dz.dtype == DType.BF16) && V % 8 == 0
                && V <= CE_MAX_REGISTER_VOCAB) {
            launchGrid("cross_entropy_forward_backward_bf16", rows, 1, 1024, 0, loss.address, loss.code(),
                    dz == null ? 0L : dz.address, z.address, cuda(targets).address, V, (float) gradScale,
                    errorWord.address());
            return;
        }
        launchGrid("cross_entropy_forward_backward", rows, 1, 512, 0, loss.address, loss.code(),
                dz == null ? 0L : dz.address, dz == null ? 0 : dz.code(), z.address, z.code(), cuda(targets).address,
                V, (float) gradScale, errorWord.address());
    }

    @Override
    public void addScaledSum(Tensor acc, Tensor x, double scale) {
        CudaTensor a = accumulator(acc, "addScaledSum");
        CudaTensor t = cuda(x);
        launchGrid("add_scaled_sum", 1, 1, 1024, 0, a.address, t.address, t.code(), t.count, scale);
    }

    // ---- adapters (docs/method.md): A is dIn×r, B is r×dOut, both row-major -----------------------------------------

    /** xa = inp·A (overwritten); out += scale·xa·B. */
    @Override
    public void adapterForward(Tensor out, Tensor xa, Tensor inp, Tensor a, Tensor b, double scale) {
        CudaTensor x = cuda(inp);
        CudaTensor ta = cuda(a);
        CudaTensor tb = cuda(b);
        int dIn = ta.shape[0];
        int r = ta.shape[1];
        int dOut = tb.shape[1];
        int rows = Math.toIntExact(x.count / dIn);
        gemm(cuda(xa), x, false, ta, false, rows, r, dIn, 1f, 0f);
        gemm(cuda(out), cuda(xa), false, tb, false, rows, dOut, r, (float) scale, 1f);
    }

    /** db += scale·xaᵀ·dout; dxa = scale·dout·Bᵀ (overwritten); da += inpᵀ·dxa; dinp += dxa·Aᵀ. */
    @Override
    public void adapterBackward(Tensor dinp, Tensor da, Tensor db, Tensor dxa, Tensor dout, Tensor inp, Tensor xa,
            Tensor a, Tensor b, double scale) {
        CudaTensor ta = cuda(a);
        CudaTensor tb = cuda(b);
        CudaTensor dy = cuda(dout);
        int dIn = ta.shape[0];
        int r = ta.shape[1];
        int dOut = tb.shape[1];
        int rows = Math.toIntExact(dy.count / dOut);
        gemm(cuda(db), cuda(xa), true, dy, false, r, dOut, rows, (float) scale, 1f);
        gemm(cuda(dxa), dy, false, tb, true, rows, r, dOut, (float) scale, 0f);
        gemm(cuda(da), cuda(inp), true, cuda(dxa), false, dIn, r, rows, 1f, 1f);
        gemm(cuda(dinp), cuda(dxa), false, ta, true, rows, dIn, r, 1f, 1f);
    }

    /**
     * The inference form (docs/method.md): on the 2:4 kernels, one product of the layer's stacked operand [W^R; Aᵀ]
     * gives Y = [X·(W^R)ᵀ | X·A | 0] (bf16, rows × (dOut + r padded)), then one pass writes out = Y1 + (X·A)·B + bias.
     * The masked dense path (fp32 debug, patterns off the 2:4 tensor cores) and an A not 2:4 along dIn run the two
     * operations it stands for, xa in scratch. A decoding step's at most 16 rows on a 2:4 layer write Y's two parts
     * apart instead (the few-rows kernel and a dense GEMM) and need no stacked operand.
     */
    @Override
    public void sparseLowRankForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b, Tensor bias) {
        lowRankForward(out, inp, weight, a, b, bias, false);
    }

    /** {@link #sparseLowRankForward} with the GELU applied in its accumulate pass, before out is rounded. */
    @Override
    public void sparseLowRankGeluForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b,
            Tensor bias) {
        lowRankForward(out, inp, weight, a, b, bias, true);
    }

    private void lowRankForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b, Tensor bias,
            boolean gelu) {
        CudaSparseLinear w = sparse(weight);
        CudaTensor o = cuda(out);
        CudaTensor x = cuda(inp);
        CudaTensor ta = cuda(a);
        CudaTensor tb = cuda(b);
        int dOut = w.dOut();
        int dIn = w.dIn();
        int r = ta.shape[1];
        if (ta.shape[0] != dIn || tb.shape[0] != r || tb.shape[1] != dOut) {
            throw new IllegalArgumentException("sparseLowRankForward: a " + dOut + "×" + dIn + " layer takes A " + dIn
                    + "×r and B r×" + dOut + ", got " + Arrays.toString(ta.shape) + " and "
                    + Arrays.toString(tb.shape));
        }
        int rows = Math.toIntExact(x.count / dIn);
        requireCount(o, (long) rows * dOut, "sparseLowRankForward output");
        CudaTensor tbias = bias == null ? null : cuda(bias);
        if (onFewRowsKernel(w, rows)) {
            // A decoding step: X·(W^R)ᵀ on the few-rows kernel and X·A as a small dense GEMM (any A), apart, then the
            // stacked form's accumulate pass.
            long y = scratch(SLOT_D, 2L * rows * dOut);
            fewRowsForward(y, DType.BF16, x, w, null, rows);
            long xa = scratch(SLOT_XA, 2L * rows * r);
            gemmInto(xa, DType.BF16, x, false, operand(ta, SLOT_B, DType.BF16), false, rows, r, dIn, 1f, 0f, 0L);
            lowRankEpilogue(o, y, dOut, xa, r, tb, tbias, rows, dOut, r, gelu);
            return;
        }
        CudaSparseLinear.StackedLowRank stacked = w.sparseKernels ? stackedLowRank(w, ta) : null;
        if (stacked == null || stacked.operand == null) {
            sparseMatmulForward(out, inp, weight, bias);
            long xaBytes = (long) rows * r * o.dtype.bytes();
            scratch(SLOT_XA, xaBytes);
            adapterForward(out, new CudaTensor(o.dtype, new int[] {rows, r}, scratch[SLOT_XA]), inp, a, b, 1.0);
            if (gelu) {
                geluForward(out, out);
            }
            return;
        }
        CusparseLt.Operand operand = stacked.operand;
        // A decoding step's few rows padded to 16, as in sparseMatmulForward; the padding's rows of Y are not read.
        int n = CusparseLt.fits(operand.m, dIn, rows) ? rows : ceil(rows, SPARSE_ROW_MULTIPLE) * SPARSE_ROW_MULTIPLE;
        long in = n == rows ? operand(x, SLOT_A, DType.BF16) : paddedOperand(x, rows, n, dIn);
        CusparseLt.Plan plan = stacked.plans.computeIfAbsent(n, m -> cusparse.plan(operand, m));
        long y = scratch(SLOT_D, 2L * n * operand.m);
        device.timed("spmm low-rank fwd " + operand.m + "x" + dIn + " n=" + n, () -> plan.multiply(operand, in, y));
        int ldy = dOut + stacked.rankPadded;
        lowRankEpilogue(o, y, ldy, y + 2L * dOut, ldy, tb, tbias, rows, dOut, r, gelu);
    }

    /**
     * out = Y + XA·B + bias (linear_low_rank_epilogue), with gelu applied to it before the store: Y and XA bf16 at row
     * strides ldy and ldxa.
     */
    private void lowRankEpilogue(CudaTensor o, long y, int ldy, long xa, int ldxa, CudaTensor b, CudaTensor bias,
            int rows, int dOut, int r, boolean gelu) {
        launchGrid("linear_low_rank_epilogue", ceil(dOut, LOW_RANK_TILE_COLS), ceil(rows, LOW_RANK_TILE_ROWS),
                THREADS, 0, o.address, o.code(), y, ldy, xa, ldxa, operand(b, SLOT_B, DType.BF16),
                CudaTensor.code(DType.BF16), bias == null ? 0L : bias.address, bias == null ? 0 : bias.code(), rows,
                dOut, r, ceil(r, LOW_RANK_CHUNK) * LOW_RANK_CHUNK, gelu ? 1 : 0);
    }

    /**
     * The layer's stacked operand for A, rebuilt when A, the layer's values or A's values changed since it was built:
     * W^R and Aᵀ (rows padded with zeros) in the dense scratch, compressed unless some group of 4 along dIn of A keeps
     * more than 2 (counted on the device and read back: a synchronising read, once per build).
     */
    private CudaSparseLinear.StackedLowRank stackedLowRank(CudaSparseLinear w, CudaTensor a) {
        CudaSparseLinear.StackedLowRank stacked = w.stackedLowRank;
        if (stacked != null && stacked.current(w.values, a)) {
            return stacked;
        }
        int r = a.shape[1];
        if (stacked == null || stacked.a != a) {
            if (stacked != null) {
                device.synchronize();
                stacked.free();
            }
            stacked = new CudaSparseLinear.StackedLowRank(a, ceil(r, SPARSE_OPERAND_ROW_MULTIPLE)
                    * SPARSE_OPERAND_ROW_MULTIPLE);
            w.stackedLowRank = stacked;
        }
        int dOut = w.dOut();
        int dIn = w.dIn();
        long dense = scatterDense(w, DType.BF16, null, false, stacked.rankPadded);
        long overTwo = scratch(SLOT_PARTIAL, 4);
        device.memsetZero(scratch[SLOT_PARTIAL], 4);
        launch1d("stack_transposed_adapter", blocks((long) r * (dIn / 4)), dense + 2L * dOut * dIn, a.address,
                a.code(), dIn, r, overTwo);
        int[] groupsOverTwo = new int[1];
        device.copyToHost(Pointer.to(groupsOverTwo), scratch[SLOT_PARTIAL], 4);
        stacked.valuesVersion = w.values.writeVersion;
        stacked.aVersion = a.writeVersion;
        if (groupsOverTwo[0] > 0) {
            // The read above synchronised: an operand built for an earlier A can go.
            stacked.free();
            return stacked;
        }
        if (stacked.operand == null) {
            stacked.operand = cusparse.operand(dOut + stacked.rankPadded, dIn);
        }
        CusparseLt.Operand operand = stacked.operand;
        device.timed("compress low-rank", () -> operand.compress(dense));
        return stacked;
    }

    // ---- optimizer ------------------------------------------------------------------------------------------------

    @Override
    public void sumOfSquares(Tensor acc, List<Tensor> tensors) {
        CudaTensor a = accumulator(acc, "sumOfSquares");
        if (tensors.isEmpty()) {
            return;
        }
        sumTable = tensorTable(sumTable, tensors);
        int grid = sumTable.grid();
        long partial = scratch(SLOT_PARTIAL, 8L * grid);
        launchGrid("sum_squares_multi", grid, 1, THREADS, 0, partial, sumTable.recordsAddress(),
                sumTable.chunkStartAddress(), sumTable.count, sumTable.chunks);
        launchGrid("sum_squares_finish", 1, 1, 32, 0, a.address, partial, grid);
    }

    /** The one-element F64 tensor a reduction adds into, refused naming the operation when it is anything else. */
    private static CudaTensor accumulator(Tensor acc, String operation) {
        CudaTensor a = cuda(acc);
        if (a.dtype != DType.F64 || a.count != 1) {
            throw new IllegalArgumentException(operation + " accumulates into a one-element F64 tensor, got " + a);
        }
        return a;
    }

    /**
     * All parameters in one launch. They share lr, betas, eps and clip (one optimizer); weight decay is per parameter
     * and the bias correction per group, of which a call may hold two (the model's and the adapters').
     */
    @Override
    public void adamw(List<AdamWUpdate> updates, Tensor gradNormSquared) {
        if (updates.isEmpty()) {
            return;
        }
        AdamWStep first = updates.getFirst().step();
        long[] slotSteps = new long[2];
        int slots = 0;
        // struct MtAdamW: param, grad, m, v, copy, n, dtParam, dtGrad, dtM, dtV, weightDecay, slot, pad.
        ByteBuffer records = MultiTensorTable.records(updates.size(), 80);
        long[] counts = new long[updates.size()];
        for (int i = 0; i < counts.length; i++) {
            AdamWUpdate u = updates.get(i);
            AdamWStep s = u.step();
            if (s.lr() != first.lr() || s.beta1() != first.beta1() || s.beta2() != first.beta2()
                    || s.eps() != first.eps() || s.clip() != first.clip()) {
                throw new IllegalArgumentException("one adamw call takes one lr, beta1, beta2, eps and clip for all"
                        + " its parameters; got " + first + " and " + s);
            }
            int slot = 0;
            while (slot < slots && slotSteps[slot] != s.step()) {
                slot++;
            }
            if (slot == slots) {
                if (slots == slotSteps.length) {
                    throw new IllegalArgumentException("one adamw call takes at most two step counts (the model's and"
                            + " the adapters'), got a third: " + s.step());
                }
                slotSteps[slots++] = s.step();
            }
            CudaTensor p = cuda(u.param());
            CudaTensor g = cuda(u.grad());
            CudaTensor m = cuda(u.m());
            CudaTensor v = cuda(u.v());
            requireCount(g, p.count, "adamw gradient");
            requireCount(m, p.count, "adamw first moment");
            requireCount(v, p.count, "adamw second moment");
            p.keepsBf16Copy = p.dtype == DType.F32 && precision == Precision.BF16;
            records.putLong(p.address).putLong(g.address).putLong(m.address).putLong(v.address)
                    .putLong(p.bf16Copy == null ? 0L : p.bf16Copy.address()).putLong(p.count).putInt(p.code())
                    .putInt(g.code()).putInt(m.code()).putInt(v.code()).putDouble(s.weightDecay()).putInt(slot)
                    .putInt(0);
            counts[i] = p.count;
        }
        adamwTable = MultiTensorTable.of(device, adamwTable, records, counts);
        double[] bc = new double[4];
        for (int slot = 0; slot < 2; slot++) {
            long step = slot < slots ? slotSteps[slot] : 1;
            bc[2 * slot] = 1.0 - StrictMath.pow(first.beta1(), step);
            bc[2 * slot + 1] = 1.0 - StrictMath.pow(first.beta2(), step);
        }
        launchGrid("adamw_multi", adamwTable.grid(), 1, THREADS, 0, adamwTable.recordsAddress(),
                adamwTable.chunkStartAddress(), adamwTable.count, adamwTable.chunks, cuda(gradNormSquared).address,
                first.lr(), first.beta1(), first.beta2(), first.eps(), first.clip(), bc[0], bc[1], bc[2], bc[3]);
        for (AdamWUpdate u : updates) {
            CudaTensor p = cuda(u.param());
            p.bf16CopyCurrent = p.bf16Copy != null;
            p.writeVersion++;
        }
    }

    @Override
    public void close() {
        device.synchronize();
        recordings.values().forEach(this::dropRecording);
        for (CudaSparseLinear w : sparseLayers) {
            if (w.forward != null) {
                w.forward.free();
            }
            if (w.backward != null) {
                w.backward.free();
            }
            if (w.stackedLowRank != null) {
                w.stackedLowRank.free();
            }
        }
        metadata.free();
        for (DevicePointer p : allocations) {
            device.free(p);
        }
        for (DevicePointer p : scratch) {
            if (p != null) {
                device.free(p);
            }
        }
        allocations.clear();
        for (MultiTensorTable table : new MultiTensorTable[] {sumTable, zeroTable, adamwTable}) {
            if (table != null) {
                table.free(device);
            }
        }
        if (cudnn != null) {
            cudnn.close();
        }
        cusparse.close();
        cublas.close();
        device.free(cublasWorkspace);
        device.free(errorWord);
        device.close();
    }

    // ---- GEMM plumbing ----------------------------------------------------------------------------------------------

    /** Row-major D[M×N] = op(A)·op(B), beta 0, for benchmarks. */
    void rawGemm(CudaTensor d, CudaTensor a, boolean transA, CudaTensor b, boolean transB, int M, int N, int K) {
        gemm(d, a, transA, b, transB, M, N, K, 1f, 0f);
    }

    private DType gemmType() {
        return precision == Precision.BF16 ? DType.BF16 : DType.F32;
    }

    /** Row-major D[M×N] = alpha·op(A)·op(B) + beta·D with tensors as operands. */
    private void gemm(CudaTensor d, CudaTensor a, boolean transA, CudaTensor b, boolean transB, int M, int N, int K,
            float alpha, float beta) {
        long bAddr = operand(b, SLOT_B, gemmType());
        gemmRaw(d, a, transA, bAddr, transB, M, N, K, alpha, beta, 0L);
    }

    /**
     * The bias in the GEMM output's type for cuBLASLt's bias epilogue (fp32 on the GPU, rounded once with the
     * product), or 0 when the output goes through fp32 scratch first (gemmRaw) and the bias is added after.
     */
    private long epilogueBias(CudaTensor out, CudaTensor bias) {
        return foldsThroughScratch(out) ? 0L : operand(bias, SLOT_BIAS, out.dtype);
    }

    private boolean foldsThroughScratch(CudaTensor d) {
        return d.dtype == DType.BF16 && precision == Precision.FP32_DEBUG || d.dtype == DType.F64;
    }

    /**
     * As {@link #gemm}, B given as an address already in the GEMM precision, and a bias for the epilogue (an address
     * from {@link #epilogueBias}, or 0).
     */
    private void gemmRaw(CudaTensor d, CudaTensor a, boolean transA, long b, boolean transB, int M, int N, int K,
            float alpha, float beta, long bias) {
        requireCount(d, (long) M * N, "GEMM output");
        if (foldsThroughScratch(d)) {
            // Compute in fp32 scratch, then fold into d at its precision.
            long tmp = scratch(SLOT_D, 4L * M * N);
            gemmInto(tmp, DType.F32, a, transA, b, transB, M, N, K, alpha, 0f, 0L);
            launch1d(beta == 0f ? "convert" : "add_into", blocks((long) M * N), d.address, d.code(), tmp,
                    CudaTensor.code(DType.F32), (long) M * N);
            if (beta != 0f && beta != 1f) {
                throw new IllegalArgumentException("beta " + beta + " with a " + d.dtype + " output");
            }
            return;
        }
        gemmInto(d.address, d.dtype, a, transA, b, transB, M, N, K, alpha, beta, bias);
    }

    private void gemmInto(long d, DType dType, CudaTensor a, boolean transA, long b, boolean transB, int M, int N,
            int K, float alpha, float beta, long bias) {
        long aAddr = operand(a, SLOT_A, gemmType());
        int typeAB = gemmType() == DType.BF16 ? CublasLt.CUDA_R_16BF : CublasLt.CUDA_R_32F;
        int typeCD = dType == DType.BF16 ? CublasLt.CUDA_R_16BF : CublasLt.CUDA_R_32F;
        device.timed("gemm " + M + "x" + N + "x" + K + (transA ? " At" : "") + (transB ? " Bt" : "")
                + (bias != 0L ? " +bias" : ""), () -> cublas.gemm(d, aAddr, transA, b, transB, M, N, K, alpha, beta,
                        typeAB, typeCD, bias, device.streamHandle()));
    }

    /** Row-major bf16 D[M×N] = op(A)·op(B) with a GELU epilogue (beta 0), bf16 operands, as {@link #gemmInto}. */
    private void gemmEpilogue(CudaTensor d, CudaTensor a, boolean transA, long b, boolean transB, int M, int N, int K,
            CublasLt.Epilogue epilogue, long bias, long aux) {
        long aAddr = operand(a, SLOT_A, DType.BF16);
        device.timed("gemm " + M + "x" + N + "x" + K + (transA ? " At" : "") + (transB ? " Bt" : "") + " "
                + epilogue.name().toLowerCase(Locale.ROOT), () -> cublas.gemm(d.address, aAddr, transA, b,
                        transB, M, N, K, 1f, 0f, CublasLt.CUDA_R_16BF, CublasLt.CUDA_R_16BF, epilogue, bias, aux,
                        device.streamHandle()));
    }

    private void gemmInto(long d, DType dType, CudaTensor a, boolean transA, CudaTensor b, boolean transB, int M,
            int N, int K, float alpha, float beta) {
        gemmInto(d, dType, a, transA, operand(b, SLOT_B, gemmType()), transB, M, N, K, alpha, beta, 0L);
    }

    /**
     * The tensor's address if it is stored in {@code type}; a master weight's bf16 copy (converted only when stale);
     * else a converted copy in a scratch slot.
     */
    private long operand(CudaTensor t, int slot, DType type) {
        if (t.dtype == type) {
            return t.address;
        }
        long dst;
        if (t.keepsBf16Copy && type == DType.BF16) {
            if (t.bf16Copy == null) {
                t.bf16Copy = allocate(2L * t.count);
            }
            dst = t.bf16Copy.address();
            if (t.bf16CopyCurrent) {
                return dst;
            }
            t.bf16CopyCurrent = true;
        } else {
            dst = scratch(slot, t.count * type.bytes());
        }
        launch1d("convert", blocks(t.count), dst, CudaTensor.code(type), t.address, t.code(), t.count);
        return dst;
    }

    /** The bf16 copy of x (rows × cols) in SLOT_A, zero-padded to n rows. */
    private long paddedOperand(CudaTensor x, int rows, int n, int cols) {
        long dst = scratch(SLOT_A, 2L * n * cols);
        launch1d("convert", blocks((long) rows * cols), dst, CudaTensor.code(DType.BF16), x.address, x.code(),
                (long) rows * cols);
        device.memsetZero(scratch[SLOT_A].withByteOffset(2L * rows * cols), 2L * (n - rows) * cols);
        return dst;
    }

    private void addBias(CudaTensor out, CudaTensor bias, int rows, int cols) {
        long n = (long) rows * cols;
        if (cols % 8 == 0 && allBf16InVectors(n, out)) {
            launch1d("add_bias_bf16", blocks(n / 8), out.address, bias.address, bias.code(), n / 8, cols);
            return;
        }
        launch1d("add_bias", blocks(n), out.address, out.code(), bias.address, bias.code(), (long) rows, cols);
    }

    /**
     * Whether the bf16 fast path of an elementwise kernel applies: every tensor bf16 (256-byte aligned, as each is its
     * own allocation) and the element count a multiple of 8, so whole 16-byte vectors cover it.
     */
    private static boolean allBf16InVectors(long count, CudaTensor... tensors) {
        return count % 8 == 0 && Arrays.stream(tensors).allMatch(t -> t.dtype == DType.BF16);
    }

    /**
     * The vectors of 8 each lane holds in the bf16 LayerNorm kernels (layernorm_*_bf16_N: a row of C in one warp's
     * registers), or 0 for the general kernels: bf16 activations with fp32 statistics, C a multiple of 8, at most
     * {@link #LAYERNORM_MAX_VECTORS_PER_LANE} · 256.
     */
    private static int layerNormVectorsPerLane(int C, CudaTensor... activationsThenStatistics) {
        int n = activationsThenStatistics.length;
        boolean types = Arrays.stream(activationsThenStatistics, 0, n - 2).allMatch(t -> t.dtype == DType.BF16)
                && Arrays.stream(activationsThenStatistics, n - 2, n).allMatch(t -> t.dtype == DType.F32);
        int perLane = ceil(C / 8, 32);
        return types && C % 8 == 0 && perLane <= LAYERNORM_MAX_VECTORS_PER_LANE ? perLane : 0;
    }

    /** out[c] += Σ_r x[r, c], rows in chunks of fixed size, chunks summed in order. */
    private void columnSums(CudaTensor out, CudaTensor x, int rows, int cols) {
        boolean vectors = cols % 8 == 0 && allBf16InVectors((long) rows * cols, x);
        int chunkRows = vectors ? COLUMN_SUMS_CHUNK_ROWS : REDUCE_CHUNK_ROWS;
        int chunks = ceil(rows, chunkRows);
        long partial = scratch(SLOT_PARTIAL, 4L * chunks * cols);
        if (vectors) {
            // A block: 32 vectors of 8 columns over a chunk of 256 rows, its 8 warps taking every 8th row.
            launchGrid("column_sums_partial_bf16", ceil(cols / 8, 32), chunks, THREADS, 0, partial, x.address, rows,
                    cols, chunkRows);
        } else {
            launchGrid("column_sums_partial", ceil(cols, THREADS), chunks, THREADS, 0, partial, x.address, x.code(),
                    rows, cols, chunkRows);
        }
        launchGrid("column_sums_finish", ceil(cols, 32), 1, THREADS, 0, out.address, out.code(), partial, chunks,
                cols);
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    /** A scratch buffer of at least {@code bytes}; contents undefined. */
    private long scratch(int slot, long bytes) {
        if (scratchBytes[slot] < bytes) {
            long size = Math.max(bytes, scratchBytes[slot] * 3 / 2);
            if (scratch[slot] != null) {
                device.synchronize();
                device.free(scratch[slot]);
                // Forgotten before the new allocation, which may fail: a freed buffer must never be handed out.
                scratch[slot] = null;
                scratchBytes[slot] = 0;
            }
            scratch[slot] = device.allocate(size);
            scratchBytes[slot] = size;
        }
        return scratch[slot].address();
    }

    private void launch1d(String kernel, int grid, Object... args) {
        device.launch(kernel, grid, 1, THREADS, 0, args);
    }

    private void launchGrid(String kernel, int gridX, int gridY, int block, int shared, Object... args) {
        device.launch(kernel, gridX, gridY, block, shared, args);
    }

    /** Blocks for a grid-stride or one-thread-per-element kernel over n elements. */
    private int blocks(long n) {
        return (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, 65535L * 32));
    }

    private static int ceil(long n, int d) {
        return Math.toIntExact((n + d - 1) / d);
    }

    static CudaTensor cuda(Tensor t) {
        if (t instanceof CudaTensor c) {
            return c;
        }
        throw new IllegalArgumentException("tensor of another backend passed to the CUDA backend: " + t);
    }

    private static CudaSparseLinear sparse(SparseLinear w) {
        if (w instanceof CudaSparseLinear c) {
            return c;
        }
        throw new IllegalArgumentException("sparse layer of another backend passed to the CUDA backend: " + w);
    }

    private static void requireCount(CudaTensor t, long n, String what) {
        if (t.count != n) {
            throw new IllegalArgumentException(what + ": tensor " + Arrays.toString(t.shape) + " holds " + t.count
                    + " values, got " + n);
        }
    }
}
