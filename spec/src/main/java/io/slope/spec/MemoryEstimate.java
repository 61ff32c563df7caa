package io.slope.spec;

import java.util.Locale;

/**
 * What training a resolved spec on the CPU backend holds in memory, in bytes. The CPU backend stores every tensor as a
 * Java {@code double[]}, so every element costs 8 bytes whatever {@code precision} says.
 *
 * <p>An estimate for refusing runs that cannot fit, not an accounting: it leaves out the JVM, the token shards,
 * masks and per-thread scratch, and rounds the activations of a layer to 16·C values per token.
 *
 * @param parameterCount the GPT-2 parameters (embeddings, blocks, final LayerNorm), without adapters
 * @param parameterBytes every parameter, sparse layers as dense matrices, plus the adapters when the run adds them
 * @param sparseCopyBytes the dense W^R and transposed W^{R,C} copies the CPU backend keeps for each sparse layer's
 *     GEMMs
 * @param gradientBytes a gradient for each trained value: only the kept n/m of a sparse layer's weights
 * @param optimizerBytes AdamW's two moments, held wherever a gradient is
 * @param activationBytes one micro-batch (training.batchSize sequences of model.seqLen tokens): every layer's saved
 *     activations, logits and their gradient, and one layer's worth of activation gradients
 */
public record MemoryEstimate(
        long parameterCount,
        long parameterBytes,
        long sparseCopyBytes,
        long gradientBytes,
        long optimizerBytes,
        long activationBytes) {

    private static final int BYTES_PER_ELEMENT = Double.BYTES;
    private static final double GIB = 1024.0 * 1024 * 1024;

    /** For a spec that passed {@link RunSpecs#resolve} and the vocabulary its tokenizer produced. */
    public static MemoryEstimate cpuTraining(ResolvedSpec resolved, int vocabSize) {
        if (vocabSize < 1) {
            throw new IllegalArgumentException("vocabSize must be at least 1 (got " + vocabSize + ")");
        }
        ResolvedSpec.Model model = resolved.model();
        double c = model.dModel();
        double t = model.seqLen();
        double batch = resolved.training().batchSize();

        double parameters = parameters(model.layers(), model.dModel(), model.seqLen(), vocabSize);
        double sparseWeights = sparseWeights(resolved);
        double adapters = adapterParameters(resolved);
        ResolvedSpec.Sparsity sparsity = resolved.sparsity();
        // Dimensions are multiples of m (validated), so the kept count is a whole number.
        double trained = parameters - sparseWeights + sparseWeights * sparsity.n() / sparsity.m() + adapters;

        double perLayerActivations = batch * t * 16 * c + 2 * batch * model.heads() * t * t;
        double logitsAndGradient = 2 * batch * t * vocabSize;
        // every layer's saved activations, plus one layer's worth of gradient buffers reused through the backward pass
        double activations = (model.layers() + 1) * perLayerActivations + logitsAndGradient;

        return new MemoryEstimate(count(parameters), bytes(parameters + adapters), bytes(2 * sparseWeights),
                bytes(trained), bytes(2 * trained), bytes(activations));
    }

    /** wte V·C, wpe T·C, per block 12C² + 13C (two LayerNorms, qkv, attention proj, fc, mlp proj), final LN 2C. */
    public static long gpt2ParameterCount(int layers, int dModel, int seqLen, int vocabSize) {
        return count(parameters(layers, dModel, seqLen, vocabSize));
    }

    public long totalBytes() {
        return count((double) parameterBytes + sparseCopyBytes + gradientBytes + optimizerBytes + activationBytes);
    }

    /** e.g. "~37.20 GiB (params 0.93, sparse copies 1.24, grads 0.62, optimizer 1.23, activations 33.18)". */
    @Override
    public String toString() {
        return String.format(Locale.ROOT,
                "~%s GiB (params %s, sparse copies %s, grads %s, optimizer %s, activations %s)", gib(totalBytes()),
                gib(parameterBytes), gib(sparseCopyBytes), gib(gradientBytes), gib(optimizerBytes),
                gib(activationBytes));
    }

    /** Bytes in GiB with two decimals ("2.10"): how every memory figure is told to users. */
    public static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f", bytes / GIB);
    }

    // Counts are products of ints, so they are taken in double: exact below 2^53, and an absurd but valid shape
    // (seqLen in the millions) saturates to Long.MAX_VALUE, which reads as "does not fit", instead of overflowing.
    static double parameters(int layers, int dModel, int seqLen, int vocabSize) {
        double c = dModel;
        return (double) vocabSize * c + (double) seqLen * c + layers * (12 * c * c + 13 * c) + 2 * c;
    }

    /** Weights of the N:M layers: all four linears of every block, less block 0's qkv under denseFirstQkv. */
    static double sparseWeights(ResolvedSpec resolved) {
        if (!resolved.sparsity().mode().sparse()) {
            return 0;
        }
        double c = resolved.model().dModel();
        double perBlock = 3 * c * c + c * c + 4 * c * c + 4 * c * c;
        double denseQkv = resolved.sparsity().denseFirstQkv() ? 3 * c * c : 0;
        return resolved.model().layers() * perBlock - denseQkv;
    }

    /**
     * Adapters A (d_in×r) and B (r×d_out) on every sparse layer, counted when the run reaches the adapter phase; a
     * dense run has no sparse layers and so no adapters.
     */
    static double adapterParameters(ResolvedSpec resolved) {
        if (RunSpecs.adapterPhaseStart(resolved) == resolved.training().steps()) {
            return 0;
        }
        double c = resolved.model().dModel();
        double rank = resolved.adapters().rank();
        // r·(d_in + d_out) summed over qkv (C→3C), attention proj (C→C), fc (C→4C), mlp proj (4C→C)
        double perBlock = rank * (4 * c + 2 * c + 5 * c + 5 * c);
        double denseQkv = resolved.sparsity().denseFirstQkv() ? rank * 4 * c : 0;
        return resolved.model().layers() * perBlock - denseQkv;
    }

    private static long bytes(double elements) {
        return count(elements * BYTES_PER_ELEMENT);
    }

    /** The cast saturates at Long.MAX_VALUE. */
    static long count(double value) {
        return (long) value;
    }
}
