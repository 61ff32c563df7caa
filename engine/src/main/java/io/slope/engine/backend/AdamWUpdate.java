package io.slope.engine.backend;

/** One parameter's AdamW update: its value, gradient and moments (all the same shape) and its hyper-parameters. */
public record AdamWUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step) {}
