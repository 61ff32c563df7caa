package io.slope.engine.checkpoint;

/** A committed checkpoint: its step, where it lives, and the SHA-256 of its manifest (what COMMIT records). */
public record CheckpointInfo(long step, String location, String manifestSha256) {}
