package io.slope.engine.backend;

import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.parallel.TcpCollective;
import io.slope.engine.sparse.NmPattern;
import java.util.List;

/**
 * The operations a GPT-2 training step is made of, at the granularity of fused layer steps (llm.c style), on tensors
 * the backend owns. Nothing here returns a value to the host except {@code download*}: a GPU backend queues every
 * other call on its stream without synchronising.
 *
 * <p>Shapes: B sequences of T tokens, rows = B·T, C channels, V vocabulary, NH heads. Activations are row-major
 * {@code rows × features}; dense weights are PyTorch {@code Linear} layout {@code dOut × dIn} (y = x·Wᵀ + b).
 *
 * <p>Convention for every {@code *Backward}: gradients are <em>added</em> into their outputs (dinp, dweight, dbias),
 * so residual branches and micro-batches accumulate; callers zero what must start from zero.
 */
public interface Backend extends AutoCloseable {
    String name();

    // ---- memory -------------------------------------------------------------------------------------------------

    /**
     * The storage type of activations (and their gradients) in a model whose parameters are {@code parameterType}: the
     * parameter type on the CPU; bf16 on a GPU in its bf16 mode (fp32 master weights, bf16 activations, docs/method.md).
     */
    default DType activationType(DType parameterType) {
        return parameterType;
    }

    /** How this backend's data-parallel ranks find each other and what they reduce with. */
    default CollectiveProvider collectives() {
        return TcpCollective.PROVIDER;
    }

    Tensor zeros(DType dtype, int... shape);

    /** Host → backend; values are rounded to the tensor's storage precision. */
    void upload(Tensor dst, double[] src);

    void uploadInts(Tensor dst, int[] src);

    /** Backend → host; waits for all queued work. */
    double[] download(Tensor src);

    int[] downloadInts(Tensor src);

    /**
     * Declares a model weight: a tensor that only {@code upload}, {@code zero}, collectives and {@code adamw} write, so
     * that a GPU may keep a low-precision copy of it for its GEMMs, refreshed by those writes (training and inference
     * alike read the weight once per step, not once per GEMM).
     */
    default void declareWeight(Tensor weight) {}

    void zero(Tensor t);

    /**
     * Runs {@code pass}: operations of this backend whose arguments (tensors, shapes, scalars) are the same on every
     * call with this key, and that read whatever changes between calls (the tokens, a decoding position) from tensors
     * uploaded before. A GPU may record the pass once and replay the recording on later calls (a CUDA Graph), so the
     * host queues one launch instead of every operation. The CPU runs it.
     */
    default void repeat(String key, Runnable pass) {
        pass.run();
    }

    /** Zeroes every listed tensor (a step's gradients): on a GPU one launch, not one per tensor. */
    default void zero(List<Tensor> tensors) {
        tensors.forEach(this::zero);
    }

    /**
     * Gives a tensor's memory back now (activations of a micro-batch size that did not fit, or of a closed model); the
     * tensor must not be used afterwards, and one this backend no longer holds is ignored. The CPU's tensors are heap
     * arrays that the garbage collector reclaims once unreferenced, so there this does nothing.
     */
    default void release(Tensor t) {}

    // ---- kernel choices -----------------------------------------------------------------------------------------

    /**
     * The choices this backend's timed kernel searches have made so far, and those handed to it by
     * {@link #reuseKernelChoices} that it has not needed yet, with what they are valid for; {@link KernelChoices#NONE}
     * for a backend that searches nothing. Checkpoints record them so a resumed run computes the same bits.
     */
    default KernelChoices kernelChoices() {
        return KernelChoices.NONE;
    }

    /**
     * Reuses recorded choices instead of searching: each applies when the plan for its key is first made (choices
     * this backend has made already stay); keys not in the record are searched as before. The record must
     * {@link KernelChoices#appliesTo} this backend's {@link #kernelChoices()}.
     */
    default void reuseKernelChoices(KernelChoices recorded) {}

    // ---- N:M sparse weights ---------------------------------------------------------------------------------------

    /**
     * Prunes a freshly initialised dense weight ({@code dOut × dIn}, row-major) to its static row mask (top-N |w| per
     * group of M along dIn) and builds the layer's operands, including the first column mask when double-pruning.
     */
    SparseLinear sparseLinear(double[] denseWeight, int dOut, int dIn, NmPattern pattern, boolean doublePrune,
            DType dtype);

    /**
     * Rebuilds a sparse layer from checkpointed state: kept values, the static row mask (kept column indices per row,
     * increasing) and, when double-pruning, the current column mask ({@code dOut × dIn}, 1 = kept).
     */
    SparseLinear restoreSparseLinear(double[] values, int[] rowKeptIndices, byte[] columnMask, int dOut, int dIn,
            NmPattern pattern, boolean doublePrune, DType dtype);

    /**
     * After the optimizer changed {@code w.values()}: rewrites the forward and backward operands. With
     * {@code refreshColumnMask} the column mask is first recomputed by magnitude from the current W^R; otherwise the
     * stored column mask is applied to the new values.
     */
    void updateSparseOperands(SparseLinear w, boolean refreshColumnMask);

    /** The static row mask: per row, the kept column indices in increasing order ({@code dOut × keptPerRow}). */
    int[] rowKeptIndices(SparseLinear w);

    /** The current column mask, {@code dOut × dIn}, 1 = kept in W^{R,C}; all kept positions of W^R when not double-pruning. */
    byte[] columnMask(SparseLinear w);

    // ---- layers ---------------------------------------------------------------------------------------------------

    /** out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]. */
    void embeddingForward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, int T);

    void embeddingBackward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int B, int T);

    /** LayerNorm over the last dimension, eps 1e-5, biased variance; saves mean and 1/std per row for backward. */
    void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias);

    /**
     * A residual add and the LayerNorm that reads it (llm.c's fused_residual_forward): residual = a + b, then
     * {@link #layerNormForward} of residual into out. By default the two operations, which is what the CPU computes; a
     * GPU may do both in one pass, the LayerNorm reading the sum as it was stored (rounded to residual's type).
     */
    default void residualLayerNormForward(Tensor residual, Tensor out, Tensor mean, Tensor rstd, Tensor a, Tensor b,
            Tensor weight, Tensor bias) {
        residualForward(residual, a, b);
        layerNormForward(out, mean, rstd, residual, weight, bias);
    }

    void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
            Tensor mean, Tensor rstd);

    /** Dense linear layer: out = inp·weightᵀ (+ bias when not null). */
    void matmulForward(Tensor out, Tensor inp, Tensor weight, Tensor bias);

    /**
     * dinp = dout·weight (overwritten: a layer's own input gradient comes first, an adapter's is added after it, ADR
     * 043); dweight += doutᵀ·inp; dbias += column sums of dout (when not null).
     */
    void matmulBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight);

    /**
     * The MLP's fc layer and its GELU (llm.c's matmul_forward with the GELU fused): preGelu = inp·weightᵀ (+ bias),
     * kept for the backward; out = gelu(preGelu). By default {@link #matmulForward} into preGelu, then
     * {@link #geluForward} of it, which is what the CPU computes; a GPU may compute both in one GEMM (cuBLASLt's
     * GELU_AUX_BIAS epilogue), GELU then applied to the product before it is rounded to preGelu's precision. A forward
     * with no backward passes no preGelu: the product goes through out (GELU_BIAS on a GPU, nothing else written).
     */
    default void matmulGeluForward(Tensor out, Tensor preGelu, Tensor inp, Tensor weight, Tensor bias) {
        Tensor product = preGelu == null ? out : preGelu;
        matmulForward(product, inp, weight, bias);
        geluForward(out, product);
    }

    /**
     * {@link #matmulBackward} of the layer whose input is gelu(preGelu) (the MLP's fc_proj), with the GELU's backward
     * folded in: dinp = (dout·weight) ⊙ gelu'(preGelu), the gradient of preGelu (overwritten, ADR 043); dweight +=
     * doutᵀ·inp; dbias += column sums of dout (when not null). By default matmulBackward, then {@link #geluBackward}
     * in place over dinp, which is what the CPU computes; a GPU may run the first GEMM with the GELU gradient as its
     * epilogue (cuBLASLt's DGELU), without rounding dout·weight first.
     */
    default void matmulBackwardGelu(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
            Tensor weight, Tensor preGelu) {
        matmulBackward(dinp, dweight, dbias, dout, inp, weight);
        geluBackward(dinp, preGelu, dinp);
    }

    /** Sparse linear layer: out = inp·(W^R)ᵀ (+ bias). */
    void sparseMatmulForward(Tensor out, Tensor inp, SparseLinear weight, Tensor bias);

    /**
     * dinp = dout·W^{R,C} (or dout·W^R without double pruning; overwritten, ADR 043); dvalues += (doutᵀ·inp) gathered
     * at the row mask's kept positions; dbias += column sums of dout.
     */
    void sparseMatmulBackward(Tensor dinp, Tensor dvalues, Tensor dbias, Tensor dout, Tensor inp,
            SparseLinear weight);

    /**
     * Low-rank adapter on a linear layer's output (docs/method.md), A {@code dIn × r} and B {@code r × dOut} row-major:
     * xa = inp·A (overwritten, kept for backward); out += scale·xa·B.
     */
    void adapterForward(Tensor out, Tensor xa, Tensor inp, Tensor a, Tensor b, double scale);

    /**
     * A sparse layer and its adapter in the inference form (docs/method.md, "Merge and the inference form"), A
     * {@code dIn × r} and B {@code r × dOut} row-major with the scale already folded into B: out = inp·(W^R)ᵀ +
     * (inp·A)·B (+ bias), overwritten. The same function as {@link #sparseMatmulForward} followed by
     * {@link #adapterForward} at scale 1, whose xa (inp·A) it rounds as that activation is stored, and keeps nowhere: a
     * forward for inference. Where A is pruned 2:4 along dIn, a GPU runs it as one 2:4 GEMM over the stacked operand
     * [W^R; Aᵀ] and one accumulate pass; any other A gives the same result by the two operations.
     */
    void sparseLowRankForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b, Tensor bias);

    /**
     * {@link #sparseLowRankForward} and the GELU after it, for an adapted fc layer in a forward with no backward. By
     * default the two operations, the GELU in place over out; a GPU may apply it in the accumulate pass.
     */
    default void sparseLowRankGeluForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b,
            Tensor bias) {
        sparseLowRankForward(out, inp, weight, a, b, bias);
        geluForward(out, out);
    }

    /** db += scale·xaᵀ·dout; dxa = scale·dout·Bᵀ (overwritten scratch, rows × r); da += inpᵀ·dxa; dinp += dxa·Aᵀ. */
    void adapterBackward(Tensor dinp, Tensor da, Tensor db, Tensor dxa, Tensor dout, Tensor inp, Tensor xa, Tensor a,
            Tensor b, double scale);

    /** What attention keeps from forward to backward (softmax probabilities on the CPU). */
    Tensor attentionState(int B, int T, int heads);

    /** Causal multi-head attention over qkv = [q | k | v] ({@code rows × 3C}), scale 1/√(C/NH); out is rows × C. */
    void attentionForward(Tensor out, Tensor state, Tensor qkv, int B, int T, int heads);

    /**
     * dqkv = the gradient of attentionForward's out with respect to qkv, given that out's gradient dout; {@code out}
     * and {@code state} are what that forward wrote. The one backward that <em>overwrites</em> its output: nothing
     * else contributes to qkv's gradient, and a fused attention kernel writes it whole (ADR 008).
     */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor state, int B, int T, int heads);

    /**
     * GELU, tanh approximation (HF gelu_new): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); elementwise, so out may be
     * inp itself.
     */
    void geluForward(Tensor out, Tensor inp);

    /** dinp = dout · gelu'(inp) (overwritten, ADR 043); elementwise, so dinp may be dout itself. */
    void geluBackward(Tensor dinp, Tensor inp, Tensor dout);

    /** out = a + b. */
    void residualForward(Tensor out, Tensor a, Tensor b);

    /**
     * Per-row cross-entropy of softmax(logits) against targets into {@code losses}; when {@code dlogits} is not null it
     * is overwritten with (softmax − onehot)·gradScale (it may be {@code logits} itself). No normalised logits are
     * kept.
     */
    void crossEntropyForwardBackward(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets, double gradScale);

    /**
     * acc[0] += scale · Σ x (acc a one-element F64 tensor), summed in a fixed order: a step's mean loss kept on the
     * device, so that reading it waits for the whole step rather than each micro-batch.
     */
    void addScaledSum(Tensor acc, Tensor x, double scale);

    // ---- incremental decoding (KV cache) ---------------------------------------------------------------------------

    /**
     * Whether this backend implements the three decoding operations below ({@link #embeddingForwardAt},
     * {@link #kvCacheStore}, {@link #attentionDecode}). Without them, sampling recomputes its whole window per token.
     * They read the position from a one-element I32 tensor on the backend, uploaded before, so that a decoding step
     * can be a {@link #repeat}ed pass. A position outside the cache is refused: by the CPU at once, by a GPU at the
     * next read from the device (the kernel writes nothing then).
     */
    default boolean supportsKvCache() {
        return false;
    }

    /** One token per sequence at one position: out[b,:] = wte[tokens[b],:] + wpe[position[0],:] (out is B × C). */
    default void embeddingForwardAt(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, Tensor position) {
        throw new UnsupportedOperationException(name() + " does not implement KV-cache decoding");
    }

    /**
     * Copies the keys and values of {@code qkv} ({@code B·n × 3C}, n rows per sequence) into the caches
     * ({@code B × maxT × C} each): row (b, j)'s k and v go to cache position {@code position[0] + j} of sequence b.
     */
    default void kvCacheStore(Tensor keys, Tensor values, Tensor qkv, int B, Tensor position) {
        throw new UnsupportedOperationException(name() + " does not implement KV-cache decoding");
    }

    /**
     * The rows per sequence (n) a {@link #kvCacheStore} of {@code qkv} into {@code keys} writes; refuses more rows than
     * the cache holds (whether they fit from the position on is checked where the position is read).
     */
    static int kvCacheStoreRows(Tensor keys, Tensor qkv, int B) {
        int C = keys.shape()[2];
        int maxT = keys.shape()[1];
        int n = Math.toIntExact(qkv.size() / (3L * C) / B);
        if (n > maxT) {
            throw new IllegalArgumentException("kvCacheStore of " + n + " positions into a cache of " + maxT);
        }
        return n;
    }

    /**
     * The decoding step of {@link #attentionForward}: the query of one new token per sequence ({@code qkv} is
     * {@code B × 3C}; only q is read) at p = {@code position[0]}, against the cached keys and values of positions
     * 0..p (its own stored first by {@link #kvCacheStore}); out is B × C. The same arithmetic as row p of
     * attentionForward.
     */
    default void attentionDecode(Tensor out, Tensor qkv, Tensor keys, Tensor values, int B, Tensor position,
            int heads) {
        throw new UnsupportedOperationException(name() + " does not implement KV-cache decoding");
    }

    // ---- optimizer ------------------------------------------------------------------------------------------------

    /**
     * acc[0] += Σ t² over all {@code tensors} (acc a one-element F64 tensor), summed in a fixed order for a given list.
     * One call for all gradients, so a GPU reads them in one launch.
     */
    void sumOfSquares(Tensor acc, List<Tensor> tensors);

    /**
     * One AdamW step on each listed parameter, its gradient scaled by the clip coefficient derived from
     * {@code gradNormSquared} (see {@link AdamWStep}). One call for all parameters, so a GPU updates them in one launch
     * (and refreshes any low-precision copies of the weights it keeps for its GEMMs in the same pass).
     */
    void adamw(List<AdamWUpdate> updates, Tensor gradNormSquared);

    @Override
    void close();
}
