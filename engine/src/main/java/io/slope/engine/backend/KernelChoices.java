package io.slope.engine.backend;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/**
 * The kernel choices a backend's timed searches made (a GPU's GEMM algorithms), and what they are valid for. The
 * searches time candidates, so two processes can choose differently for the same shape and compute different last
 * bits; a resumed run that reuses the choices recorded in its checkpoint computes what an uninterrupted one would.
 * Only the backend reads the choices (per key, its library's description of one search's result); the engine stores
 * them and compares {@link #validFor}.
 *
 * @param validFor what the choices can be reproduced on (GPU, compute capability, library versions); empty for a
 *                 backend that searches nothing
 * @param choices  per search key (a GEMM shape), the choice made for it
 */
public record KernelChoices(Map<String, String> validFor, Map<String, String> choices) {
    /** A backend that searches nothing has nothing to record. */
    public static final KernelChoices NONE = new KernelChoices(Map.of(), Map.of());

    /** Both maps sorted, so a checkpoint's state is the same bytes for the same choices. */
    public KernelChoices {
        validFor = Collections.unmodifiableMap(new TreeMap<>(validFor));
        choices = Collections.unmodifiableMap(new TreeMap<>(choices));
    }

    /** Whether this backend makes choices at all (and so searches anew when none are handed to it). */
    public boolean searches() {
        return !validFor.isEmpty();
    }

    /** Whether these choices were made where {@code current} runs: the same GPU and the same libraries. */
    public boolean appliesTo(KernelChoices current) {
        return searches() && validFor.equals(current.validFor);
    }
}
