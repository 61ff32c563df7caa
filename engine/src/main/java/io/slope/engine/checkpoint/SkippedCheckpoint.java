package io.slope.engine.checkpoint;

/** A committed checkpoint that failed verification while looking for the latest usable one, and why. */
public record SkippedCheckpoint(long step, String reason) {}
