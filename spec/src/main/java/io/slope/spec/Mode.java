package io.slope.spec;

import java.util.Arrays;
import java.util.List;

/** The three ways a linear layer can train (docs/method.md, "One training step of a sparse layer"). */
public enum Mode {
    /** No masks at all. */
    DENSE("dense"),
    /** Static row mask, exact gradient of the masked model: dX = dY·W^R. */
    SPARSE_NO_DOUBLE_PRUNE("sparse-no-double-prune"),
    /** Static row mask, double-pruned backward: dX = dY·W^{R,C}. */
    SLOPE("slope");

    private final String wireName;

    Mode(String wireName) {
        this.wireName = wireName;
    }

    public String wireName() {
        return wireName;
    }

    public boolean sparse() {
        return this != DENSE;
    }

    public static List<String> wireNames() {
        return Arrays.stream(values()).map(Mode::wireName).toList();
    }

    public static Mode fromWire(String name) {
        for (Mode m : values()) {
            if (m.wireName.equals(name)) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown mode '" + name + "'; allowed: " + wireNames());
    }
}
