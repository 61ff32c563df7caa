package io.slope.engine.data;

/** Tokens held in memory: a corpus small enough not to need shards, or a test's data. */
public record ArrayTokens(int[] tokens) implements TokenSequence {
    @Override
    public long length() {
        return tokens.length;
    }

    @Override
    public void read(long from, int[] destination, int offset, int count) {
        System.arraycopy(tokens, Math.toIntExact(from), destination, offset, count);
    }
}
