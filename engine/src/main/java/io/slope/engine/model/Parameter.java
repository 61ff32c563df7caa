package io.slope.engine.model;

import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;

/**
 * One trainable tensor with its gradient (null in a model built for inference, {@link GptModel.Use}). For a sparse layer {@code value} is the layer's kept values (so the gradient,
 * and the optimizer's moments, exist only for kept weights) and {@code sparse} the layer itself. {@code group} is the
 * optimizer group: the adapters count their own AdamW steps from 1 (docs/method.md, "Lazy adapters").
 */
public record Parameter(String name, Tensor value, Tensor grad, boolean decay, SparseLinear sparse, Group group) {

    /** AdamW parameter groups, each with its own step count for bias correction. */
    public enum Group {
        MAIN,
        ADAPTERS
    }

    public boolean isSparse() {
        return sparse != null;
    }
}
