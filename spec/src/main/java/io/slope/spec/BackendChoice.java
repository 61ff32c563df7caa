package io.slope.spec;

/** Which backend a run asks for ({@code backend} in docs/spec.md); {@code auto} takes a GPU when one can run. */
public enum BackendChoice implements WireName {
    AUTO,
    CPU,
    CUDA;

    /** Whether the run may train on a GPU, so it needs one named per rank. */
    public boolean mayUseGpu() {
        return this != CPU;
    }
}
