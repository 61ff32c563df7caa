package io.slope.engine.checkpoint;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * What one checkpoint holds: the optimizer step it was taken after, the tensors (weights, moments, masks, ...) and the
 * caller's own state as a JSON object (spec, data-loader position, RNG counters, ...), which the store keeps opaque.
 */
public record Checkpoint(long step, List<NamedTensor> tensors, ObjectNode state) {
    public Checkpoint {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        tensors = List.copyOf(tensors);
        state = state.deepCopy();
    }

    /** The tensor called {@code name}; fails naming the tensors there are when it is absent. */
    public NamedTensor tensor(String name) {
        for (NamedTensor tensor : tensors) {
            if (tensor.name().equals(name)) {
                return tensor;
            }
        }
        throw new IllegalArgumentException("checkpoint " + step + " has no tensor " + name + "; it has "
                + tensors.stream().map(NamedTensor::name).toList());
    }
}
