package io.slope.spec;

/** The CPU backend's storage precision ({@code precision} in docs/spec.md); fp64 is for gradient checks. */
public enum Precision implements WireName {
    FP32,
    FP64
}
