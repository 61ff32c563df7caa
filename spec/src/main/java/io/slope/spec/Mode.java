package io.slope.spec;

import java.util.List;

/** The three ways a linear layer can train (docs/method.md, "One training step of a sparse layer"). */
public enum Mode implements WireName {
    /** No masks at all. */
    DENSE,
    /** Static row mask, exact gradient of the masked model: dX = dY·W^R. */
    SPARSE_NO_DOUBLE_PRUNE,
    /** Static row mask, double-pruned backward: dX = dY·W^{R,C}. */
    SLOPE;

    public boolean sparse() {
        return this != DENSE;
    }

    public static List<String> wireNames() {
        return WireName.names(Mode.class);
    }

    public static Mode fromWire(String name) {
        return WireName.parse(Mode.class, name, "mode");
    }
}
