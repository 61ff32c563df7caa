package io.slope.engine.data;

/** A read-only sequence of token ids addressed by a 64-bit position: a shard, or several shards end to end. */
public interface TokenSequence {
    long length();

    /** Copies tokens {@code [from, from + count)} into {@code destination[offset ...]}. */
    void read(long from, int[] destination, int offset, int count);

    default int[] read(long from, int count) {
        int[] tokens = new int[count];
        read(from, tokens, 0, count);
        return tokens;
    }
}
