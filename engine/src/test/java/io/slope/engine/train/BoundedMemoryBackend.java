package io.slope.engine.train;

import io.slope.engine.backend.AdamWUpdate;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.OutOfDeviceMemory;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.sparse.NmPattern;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * A real {@link CpuBackend} with the memory of a small device: the tensors it allocates ({@link #zeros},
 * {@link #attentionState}) count at their {@link DType#bytes} until {@link #release}d, and an allocation that would
 * take the count past the budget throws {@link OutOfDeviceMemory}, as the CUDA backend does when the driver runs out.
 * It stands in for a GPU too small for the batch, which CI does not have; every other call goes to the CPU backend
 * unchanged (its sparse layers' own buffers are not counted: they do not depend on the batch).
 */
public final class BoundedMemoryBackend implements Backend {
    private final CpuBackend cpu;
    private final Map<Tensor, Long> live = new IdentityHashMap<>();
    private long budgetBytes = Long.MAX_VALUE;
    private long liveBytes;
    private long peakBytes;
    private int failures;
    private OutOfDeviceMemory firstFailure;

    public BoundedMemoryBackend(CpuBackend cpu) {
        this.cpu = cpu;
    }

    void budget(long bytes) {
        budgetBytes = bytes;
    }

    public long liveBytes() {
        return liveBytes;
    }

    public long peakBytes() {
        return peakBytes;
    }

    /** How many allocations were refused so far. */
    int failures() {
        return failures;
    }

    OutOfDeviceMemory firstFailure() {
        return firstFailure;
    }

    private Tensor counted(long bytes, Supplier<Tensor> allocation) {
        if (bytes > budgetBytes - liveBytes) {
            OutOfDeviceMemory e = new OutOfDeviceMemory(bytes, budgetBytes - liveBytes);
            failures++;
            if (firstFailure == null) {
                firstFailure = e;
            }
            throw e;
        }
        Tensor t = allocation.get();
        live.put(t, bytes);
        liveBytes += bytes;
        peakBytes = Math.max(peakBytes, liveBytes);
        return t;
    }

    private static long bytes(DType dtype, int... shape) {
        long n = dtype.bytes();
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        return counted(bytes(dtype, shape), () -> cpu.zeros(dtype, shape));
    }

    @Override
    public Tensor attentionState(int B, int T, int heads) {
        Tensor state = cpu.attentionState(B, T, heads);
        return counted(bytes(state.dtype(), state.shape()), () -> state);
    }

    @Override
    public void release(Tensor t) {
        Long bytes = live.remove(t);
        if (bytes != null) {
            liveBytes -= bytes;
        }
        cpu.release(t);
    }

    @Override
    public String name() {
        return "bounded-memory(" + cpu.name() + ")";
    }

    @Override
    public DType activationType(DType parameterType) {
        return cpu.activationType(parameterType);
    }

    @Override
    public CollectiveProvider collectives() {
        return cpu.collectives();
    }

    @Override
    public void upload(Tensor dst, double[] src) {
        cpu.upload(dst, src);
    }

    @Override
    public void uploadInts(Tensor dst, int[] src) {
        cpu.uploadInts(dst, src);
    }

    @Override
    public double[] download(Tensor src) {
        return cpu.download(src);
    }

    @Override
    public int[] downloadInts(Tensor src) {
        return cpu.downloadInts(src);
    }

    @Override
    public void declareWeight(Tensor weight) {
        cpu.declareWeight(weight);
    }

    @Override
    public void zero(Tensor t) {
        cpu.zero(t);
    }

    @Override
    public SparseLinear sparseLinear(double[] denseWeight, int dOut, int dIn, NmPattern pattern, boolean doublePrune,
            DType dtype) {
        return cpu.sparseLinear(denseWeight, dOut, dIn, pattern, doublePrune, dtype);
    }

    @Override
    public SparseLinear restoreSparseLinear(double[] values, int[] rowKeptIndices, byte[] columnMask, int dOut,
            int dIn, NmPattern pattern, boolean doublePrune, DType dtype) {
        return cpu.restoreSparseLinear(values, rowKeptIndices, columnMask, dOut, dIn, pattern, doublePrune, dtype);
    }

    @Override
    public void updateSparseOperands(SparseLinear w, boolean refreshColumnMask) {
        cpu.updateSparseOperands(w, refreshColumnMask);
    }

    @Override
    public int[] rowKeptIndices(SparseLinear w) {
        return cpu.rowKeptIndices(w);
    }

    @Override
    public byte[] columnMask(SparseLinear w) {
        return cpu.columnMask(w);
    }

    @Override
    public void embeddingForward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, int T) {
        cpu.embeddingForward(out, tokens, wte, wpe, B, T);
    }

    @Override
    public void embeddingBackward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int B, int T) {
        cpu.embeddingBackward(dwte, dwpe, dout, tokens, B, T);
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias) {
        cpu.layerNormForward(out, mean, rstd, inp, weight, bias);
    }

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
            Tensor mean, Tensor rstd) {
        cpu.layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        cpu.matmulForward(out, inp, weight, bias);
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight) {
        cpu.matmulBackward(dinp, dweight, dbias, dout, inp, weight);
    }

    @Override
    public void sparseMatmulForward(Tensor out, Tensor inp, SparseLinear weight, Tensor bias) {
        cpu.sparseMatmulForward(out, inp, weight, bias);
    }

    @Override
    public void sparseMatmulBackward(Tensor dinp, Tensor dvalues, Tensor dbias, Tensor dout, Tensor inp,
            SparseLinear weight) {
        cpu.sparseMatmulBackward(dinp, dvalues, dbias, dout, inp, weight);
    }

    @Override
    public void adapterForward(Tensor out, Tensor xa, Tensor inp, Tensor a, Tensor b, double scale) {
        cpu.adapterForward(out, xa, inp, a, b, scale);
    }

    @Override
    public void sparseLowRankForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b, Tensor bias) {
        cpu.sparseLowRankForward(out, inp, weight, a, b, bias);
    }

    @Override
    public void adapterBackward(Tensor dinp, Tensor da, Tensor db, Tensor dxa, Tensor dout, Tensor inp, Tensor xa,
            Tensor a, Tensor b, double scale) {
        cpu.adapterBackward(dinp, da, db, dxa, dout, inp, xa, a, b, scale);
    }

    @Override
    public void attentionForward(Tensor out, Tensor state, Tensor qkv, int B, int T, int heads) {
        cpu.attentionForward(out, state, qkv, B, T, heads);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor state, int B, int T,
            int heads) {
        cpu.attentionBackward(dqkv, dout, qkv, out, state, B, T, heads);
    }

    @Override
    public void geluForward(Tensor out, Tensor inp) {
        cpu.geluForward(out, inp);
    }

    @Override
    public void geluBackward(Tensor dinp, Tensor inp, Tensor dout) {
        cpu.geluBackward(dinp, inp, dout);
    }

    @Override
    public void residualForward(Tensor out, Tensor a, Tensor b) {
        cpu.residualForward(out, a, b);
    }

    @Override
    public void crossEntropyForwardBackward(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets,
            double gradScale) {
        cpu.crossEntropyForwardBackward(losses, dlogits, logits, targets, gradScale);
    }

    @Override
    public void addScaledSum(Tensor acc, Tensor x, double scale) {
        cpu.addScaledSum(acc, x, scale);
    }

    @Override
    public boolean supportsKvCache() {
        return cpu.supportsKvCache();
    }

    @Override
    public void embeddingForwardAt(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, Tensor position) {
        cpu.embeddingForwardAt(out, tokens, wte, wpe, B, position);
    }

    @Override
    public void kvCacheStore(Tensor keys, Tensor values, Tensor qkv, int B, Tensor position) {
        cpu.kvCacheStore(keys, values, qkv, B, position);
    }

    @Override
    public void attentionDecode(Tensor out, Tensor qkv, Tensor keys, Tensor values, int B, Tensor position,
            int heads) {
        cpu.attentionDecode(out, qkv, keys, values, B, position, heads);
    }

    @Override
    public void sumOfSquares(Tensor acc, List<Tensor> tensors) {
        cpu.sumOfSquares(acc, tensors);
    }

    @Override
    public void adamw(List<AdamWUpdate> updates, Tensor gradNormSquared) {
        cpu.adamw(updates, gradNormSquared);
    }

    @Override
    public void close() {
        cpu.close();
    }
}
