package io.slope.engine.backend;

/**
 * Hyper-parameters of one AdamW update of one parameter (torch.optim.AdamW semantics). {@code step} is the 1-based
 * step count of the parameter's group (bias correction). Gradients are scaled by the global-norm clip coefficient
 * min(1, clip / (‖g‖ + 1e-6)) computed on the backend from the squared norm, so the host never waits for it;
 * {@code clip = 0} turns clipping off.
 */
public record AdamWStep(double lr, double beta1, double beta2, double eps, double weightDecay, long step,
        double clip) {}
