package io.slope.spec;

import java.util.Locale;

/**
 * What training a resolved spec on one GPU (the CUDA backend: bf16 GEMM operands and activations, fp32 master weights
 * and moments) holds at its peak, in bytes: the figure a run with backend {@code cuda} is checked against before it is
 * accepted ({@link RunSpecs#validateForGpu}). It follows how the CUDA backend lays a run out (docs/spec.md, "Memory on
 * the GPU", with its comparison to measured peaks). The peak is the final evaluation, where every part is held at
 * once: the training state and buffers stay allocated while the fp32 copy of the model is evaluated beside them.
 *
 * <p>Left out: the CUDA context and libraries, cuDNN's and cuSPARSELt's workspaces, the token data, and what a second,
 * smaller set of activation buffers takes when an evaluation's window count is not a multiple of the batch size.
 * One rank: data-parallel ranks hold the same but for AdamW's moments, which they shard (ZeRO-1).
 *
 * @param masterBytes fp32 master weights: every dense parameter, the kept n/m of each sparse layer's weights, and the
 *     adapters when the run reaches them
 * @param gradientBytes an fp32 gradient for each master weight
 * @param optimizerBytes AdamW's two fp32 moments for each master weight
 * @param operandBytes what the GEMMs read besides the masters: a bf16 copy of each dense GEMM weight (wte, and the
 *     adapters), and per sparse layer its row mask (a byte per kept weight), column mask (a bit per weight) and its
 *     two operands, cuSPARSELt-compressed (1.125 bytes per weight, and a compression buffer) where the 2:4 tensor cores
 *     apply, else masked dense bf16
 * @param activationBytes one micro-batch, training.batchSize sequences of model.seqLen tokens: every layer's saved
 *     activations (18·C values in bf16 per token), LayerNorm and attention statistics and the fp32 copy of the
 *     attention output that the project's attention kernels keep (cuDNN's, where it runs, keeps none); the logits;
 *     one layer's worth of gradient buffers; the adapters' X·A once they join
 * @param evaluationBytes the fp32 copy of the model each stage evaluation builds in a second backend beside the
 *     training state: weights and gradient buffers, sparse layers as masked dense fp32 matrices, and one micro-batch
 *     of fp32 activations
 * @param workspaceBytes cuBLASLt's workspace in both backends, and the scratch a sparse layer is built in (its dense
 *     weight in fp64)
 */
public record GpuMemoryEstimate(
        long masterBytes,
        long gradientBytes,
        long optimizerBytes,
        long operandBytes,
        long activationBytes,
        long evaluationBytes,
        long workspaceBytes) {

    private static final double BF16 = 2;
    private static final double FP32 = 4;
    private static final double INT32 = 4;
    private static final double MASK_OFFSET = 1;
    private static final double COLUMN_MASK_BIT = 1.0 / 8;
    /**
     * A cuSPARSELt 2:4 operand per dense weight: half the values in bf16 and 2 bits of metadata per kept value (1.125
     * bytes), and the compression buffer cuSPARSELt asks for beside it, taken as large (which brings the measured
     * SLoPe peaks as close to the estimate as the dense ones, docs/spec.md).
     */
    private static final double COMPRESSED = 2 * 1.125;
    /** Each backend's cuBLASLt workspace (CudaBackend.CUBLAS_WORKSPACE). */
    private static final double CUBLAS_WORKSPACE = 32L << 20;

    /** For a spec that passed {@link RunSpecs#resolve} and the vocabulary its tokenizer produces. */
    public static GpuMemoryEstimate training(ResolvedSpec resolved, int vocabSize) {
        if (vocabSize < 1) {
            throw new IllegalArgumentException("vocabSize must be at least 1 (got " + vocabSize + ")");
        }
        ResolvedSpec.Model model = resolved.model();
        ResolvedSpec.Sparsity sparsity = resolved.sparsity();
        double c = model.dModel();
        double tokens = (double) resolved.training().batchSize() * model.seqLen();
        double rank = resolved.adapters().rank();

        double parameters = MemoryEstimate.parameters(model.layers(), model.dModel(), model.seqLen(), vocabSize);
        double sparseWeights = MemoryEstimate.sparseWeights(resolved);
        double adapters = MemoryEstimate.adapterParameters(resolved);
        double kept = (double) sparsity.n() / sparsity.m();
        double masters = parameters - sparseWeights + kept * sparseWeights + adapters;
        // The GEMM weights: the tied wte/classifier and every block's four linears.
        double gemmWeights = (double) vocabSize * c + model.layers() * 12 * c * c;
        double denseGemmWeights = gemmWeights - sparseWeights + adapters;

        // The CUDA backend's packed masks (CudaSparseLinear): each kept weight's offset in its group, a byte; the
        // column mask, a bit per weight (d_out rounded up to 32 rows, left out here).
        double sparseMasks = sparseWeights * (MASK_OFFSET * kept + COLUMN_MASK_BIT);
        // cuSPARSELt takes a layer when the pattern keeps at most 2 of every 4 and every dimension is a multiple of
        // 32 (all are multiples of dModel); double pruning compresses the backward operand too.
        boolean twoFour = (sparsity.m() % 4 == 0 && sparsity.n() <= 2) || (sparsity.m() == 2 && sparsity.n() == 1);
        boolean sparseKernels = twoFour && model.dModel() % 32 == 0;
        double forwardOperand = sparseKernels ? COMPRESSED : BF16;
        double backwardOperand = sparseKernels && resolved.sparsity().mode() == Mode.SLOPE ? COMPRESSED : BF16;
        double operands = BF16 * denseGemmWeights + sparseMasks + sparseWeights * (forwardOperand + backwardOperand);

        double adaptedLayers = adapters > 0 ? sparseLayers(resolved) : 0;
        double activations = activations(resolved, vocabSize, BF16, rank, adaptedLayers) * tokens;

        // The fp32 copy: no moments and no bf16 copies; a sparse layer's masked dense operands in fp32.
        double evaluation = 2 * FP32 * masters + sparseMasks + 2 * FP32 * sparseWeights
                + activations(resolved, vocabSize, FP32, rank, adaptedLayers) * tokens;
        double workspace = 2 * CUBLAS_WORKSPACE + (sparseWeights > 0 ? Double.BYTES * 4 * c * c : 0);

        return new GpuMemoryEstimate(MemoryEstimate.count(FP32 * masters), MemoryEstimate.count(FP32 * masters),
                MemoryEstimate.count(2 * FP32 * masters), MemoryEstimate.count(operands),
                MemoryEstimate.count(activations), MemoryEstimate.count(evaluation),
                MemoryEstimate.count(workspace));
    }

    /**
     * The bytes of activation buffers per token in {@code bytes}-wide values (row statistics, losses and token ids are
     * 4 bytes each whatever the activations are), with X·A of rank {@code adapterRank} for {@code adaptedLayers}.
     * Per layer: ln1, qkv (3C), attention output, its projection, residual, ln2, fc (4C), GELU (4C), fc projection,
     * residual = 18C, two LayerNorms' mean and rstd, the attention's log-sum-exp and D per head, and its fp32 output
     * copy (C). Once: the embedding, final LayerNorm (and its statistics) and logits, the gradient buffers shared by
     * the layers (residual, LayerNorm, qkv, attention, fc, GELU: 14C), token ids, targets and losses.
     */
    private static double activations(ResolvedSpec resolved, int vocabSize, double bytes, double adapterRank,
            double adaptedLayers) {
        double c = resolved.model().dModel();
        double perLayer = bytes * 18 * c + FP32 * 4 + FP32 * 2 * resolved.model().heads() + FP32 * c;
        double once = bytes * (2 * c + vocabSize + 14 * c) + FP32 * 2 + INT32 * 2 + FP32;
        // X·A of every adapted layer, and the one gradient buffer of d(X·A) they share
        double adapterBuffers = adaptedLayers == 0 ? 0 : bytes * adapterRank * (adaptedLayers + 1);
        return resolved.model().layers() * perLayer + once + adapterBuffers;
    }

    /** Every block's four linears, less block 0's qkv under denseFirstQkv; none in a dense run. */
    private static double sparseLayers(ResolvedSpec resolved) {
        if (!resolved.sparsity().mode().sparse()) {
            return 0;
        }
        return 4.0 * resolved.model().layers() - (resolved.sparsity().denseFirstQkv() ? 1 : 0);
    }

    public long totalBytes() {
        return MemoryEstimate.count((double) masterBytes + gradientBytes + optimizerBytes + operandBytes
                + activationBytes + evaluationBytes + workspaceBytes);
    }

    /**
     * e.g. "~14.12 GiB (weights 0.46, grads 0.46, optimizer 0.93, operands 0.23, activations 3.78, fp32 evaluation
     * copy 8.19, workspaces 0.06)".
     */
    @Override
    public String toString() {
        return String.format(Locale.ROOT, "~%s GiB (weights %s, grads %s, optimizer %s, operands %s, activations %s, "
                + "fp32 evaluation copy %s, workspaces %s)", MemoryEstimate.gib(totalBytes()),
                MemoryEstimate.gib(masterBytes), MemoryEstimate.gib(gradientBytes), MemoryEstimate.gib(optimizerBytes),
                MemoryEstimate.gib(operandBytes), MemoryEstimate.gib(activationBytes),
                MemoryEstimate.gib(evaluationBytes), MemoryEstimate.gib(workspaceBytes));
    }
}
