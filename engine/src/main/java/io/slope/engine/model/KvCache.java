package io.slope.engine.model;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What incremental decoding keeps between tokens for B sequences of one {@link GptModel}: every layer's keys and values
 * of the positions seen so far ({@code B × seqLen × C} each, on the backend), and the buffers of one decoding step
 * (one token per sequence, B rows), reused from token to token. Made by {@link GptModel#kvCache}, filled by
 * {@link GptModel#prefill}, extended by {@link GptModel#decode}.
 */
public final class KvCache {
    private static final AtomicLong CREATED = new AtomicLong();

    final GptModel model;
    final int B;
    /** Unique among the caches of this JVM: a decoding step is a repeated pass over this cache's buffers alone. */
    final long serial = CREATED.incrementAndGet();
    final Tensor[] keys;
    final Tensor[] values;
    // One decoding step, shared by all layers (nothing is kept for a backward).
    final Tensor tokens;
    /** Where the next keys and values go (one I32, uploaded before each prefill or decoding step). */
    final Tensor position;
    final Tensor residual;
    final Tensor residual2;
    final Tensor ln;
    final Tensor lnMean;
    final Tensor lnRstd;
    final Tensor qkv;
    final Tensor atty;
    final Tensor branch;
    final Tensor fchGelu;
    final Tensor logits;
    /** X·A per adapted layer (the adapters attached when the cache was made). */
    final Map<String, Tensor> xa;
    /** Positions held: the next token goes to this position. */
    int length;

    KvCache(GptModel model, int B, Iterable<String> adaptedLayers) {
        Backend backend = model.backend();
        GptConfig config = model.config();
        int C = config.dModel();
        // Activations at the backend's activation type, like the batched forward's; row statistics at the parameters'.
        DType act = backend.activationType(model.dtype());
        this.model = model;
        this.B = B;
        keys = new Tensor[config.layers()];
        values = new Tensor[config.layers()];
        for (int l = 0; l < config.layers(); l++) {
            keys[l] = backend.zeros(act, B, config.seqLen(), C);
            values[l] = backend.zeros(act, B, config.seqLen(), C);
        }
        tokens = backend.zeros(DType.I32, B);
        position = backend.zeros(DType.I32, 1);
        residual = backend.zeros(act, B, C);
        residual2 = backend.zeros(act, B, C);
        ln = backend.zeros(act, B, C);
        lnMean = backend.zeros(model.dtype(), B);
        lnRstd = backend.zeros(model.dtype(), B);
        qkv = backend.zeros(act, B, 3 * C);
        atty = backend.zeros(act, B, C);
        branch = backend.zeros(act, B, C);
        fchGelu = backend.zeros(act, B, 4 * C);
        logits = backend.zeros(act, B, config.vocab());
        xa = new HashMap<>();
        for (String layer : adaptedLayers) {
            xa.put(layer, backend.zeros(act, B, model.adapterRank()));
        }
    }

    /** Sequences in the cache. */
    public int batch() {
        return B;
    }

    /** Positions held per sequence; the next decoded token takes this position. */
    public int length() {
        return length;
    }

    /** Whether every position of the model's context is taken, so that no further token can be decoded. */
    public boolean full() {
        return length == keys[0].shape()[1];
    }
}
