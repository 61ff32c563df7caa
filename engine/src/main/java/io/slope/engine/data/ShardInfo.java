package io.slope.engine.data;

/** A finished token shard: its file name, token count and its content SHA-256 (hex), as in its header. */
public record ShardInfo(String file, long tokens, String sha256) {}
