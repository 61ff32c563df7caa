package io.slope.engine.data;

/** A finished token shard: its file name, token count and the SHA-256 of its payload (hex). */
public record ShardInfo(String file, long tokens, String sha256) {}
