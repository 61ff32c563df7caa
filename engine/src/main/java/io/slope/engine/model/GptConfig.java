package io.slope.engine.model;

import io.slope.engine.sparse.NmPattern;
import io.slope.spec.MemoryEstimate;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;

/** The shape of a GPT-2 model and which of its linear layers are sparse. */
public record GptConfig(int layers, int heads, int dModel, int seqLen, int vocab, Mode mode, NmPattern pattern,
        boolean denseFirstQkv) {

    public GptConfig {
        if (layers < 1) {
            throw new IllegalArgumentException("a model needs at least one block, got layers " + layers);
        }
        if (dModel % heads != 0) {
            throw new IllegalArgumentException("dModel " + dModel + " not divisible by heads " + heads);
        }
        if (vocab < 1) {
            throw new IllegalArgumentException("vocabulary must not be empty");
        }
    }

    public static GptConfig of(ResolvedSpec resolved, int vocab) {
        ResolvedSpec.Model m = resolved.model();
        ResolvedSpec.Sparsity s = resolved.sparsity();
        return new GptConfig(m.layers(), m.heads(), m.dModel(), m.seqLen(), vocab, resolved.sparsity().mode(),
                new NmPattern(s.n(), s.m()), s.denseFirstQkv());
    }

    /** Whether the named linear layer of block {@code layer} is N:M sparse (docs/method.md, "Which layers"). */
    public boolean sparse(int layer, LinearKind kind) {
        return mode.sparse() && !(denseFirstQkv && layer == 0 && kind == LinearKind.QKV);
    }

    /** The four linear layers of a block, with their shapes (dOut × dIn). */
    public enum LinearKind {
        QKV("attn.c_attn", 3, 1),
        ATTN_PROJ("attn.c_proj", 1, 1),
        FC("mlp.c_fc", 4, 1),
        FC_PROJ("mlp.c_proj", 1, 4);

        final String name;
        final int outMultiple;
        final int inMultiple;

        LinearKind(String name, int outMultiple, int inMultiple) {
            this.name = name;
            this.outMultiple = outMultiple;
            this.inMultiple = inMultiple;
        }

        public String paramName(int layer) {
            return "h." + layer + "." + name;
        }
    }

    /** Dense parameter count (the "N" of 6N FLOPs per token). */
    public long parameterCount() {
        return MemoryEstimate.gpt2ParameterCount(layers, dModel, seqLen, vocab);
    }
}
