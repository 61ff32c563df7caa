package io.slope.engine.rng;

/**
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the counter-based generator
 * cuRAND also implements. A value is a pure function of (seed, stream, index): no hidden state, so any element of any
 * stream can be regenerated in any order, on any thread or device, and a checkpoint only needs the counters.
 *
 * <p>Streams name a purpose (a parameter's initialisation, the data loader, sampling); {@link #stream(String)} turns a
 * name into a stable 64-bit id.
 */
public final class Philox {
    private static final int M0 = 0xD2511F53;
    private static final int M1 = 0xCD9E8D57;
    private static final int W0 = 0x9E3779B9;
    private static final int W1 = 0xBB67AE85;
    private static final double TWO_POW_MINUS_53 = 0x1.0p-53;

    private Philox() {}

    /** The four 32-bit words for counter (stream, index) under key = seed. */
    public static int[] block(long seed, long stream, long index) {
        int c0 = (int) index;
        int c1 = (int) (index >>> 32);
        int c2 = (int) stream;
        int c3 = (int) (stream >>> 32);
        int k0 = (int) seed;
        int k1 = (int) (seed >>> 32);
        for (int round = 0; round < 10; round++) {
            long p0 = (M0 & 0xFFFFFFFFL) * (c0 & 0xFFFFFFFFL);
            long p1 = (M1 & 0xFFFFFFFFL) * (c2 & 0xFFFFFFFFL);
            int n0 = (int) (p1 >>> 32) ^ c1 ^ k0;
            int n1 = (int) p1;
            int n2 = (int) (p0 >>> 32) ^ c3 ^ k1;
            int n3 = (int) p0;
            c0 = n0;
            c1 = n1;
            c2 = n2;
            c3 = n3;
            k0 += W0;
            k1 += W1;
        }
        return new int[] {c0, c1, c2, c3};
    }

    /** Uniform double in [0, 1) with 53 random bits. */
    public static double uniform(long seed, long stream, long index) {
        int[] b = block(seed, stream, index);
        return bits53(b[0], b[1]) * TWO_POW_MINUS_53;
    }

    /** Uniform long in [0, bound), bound > 0, without modulo bias worth noting (bound ≪ 2^53). */
    public static long uniformLong(long seed, long stream, long index, long bound) {
        if (bound <= 0) {
            throw new IllegalArgumentException("bound must be positive: " + bound);
        }
        return (long) Math.floor(uniform(seed, stream, index) * bound);
    }

    /** Standard normal by Box-Muller on the block's two 53-bit uniforms; StrictMath keeps it bit-reproducible. */
    public static double normal(long seed, long stream, long index) {
        int[] b = block(seed, stream, index);
        double u1 = (bits53(b[0], b[1]) + 1.0) * TWO_POW_MINUS_53; // (0, 1]: log stays finite
        double u2 = bits53(b[2], b[3]) * TWO_POW_MINUS_53;
        return StrictMath.sqrt(-2.0 * StrictMath.log(u1)) * StrictMath.cos(2.0 * StrictMath.PI * u2);
    }

    /** A stable 64-bit stream id for a purpose name (FNV-1a over its UTF-16 chars). */
    public static long stream(String purpose) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < purpose.length(); i++) {
            h ^= purpose.charAt(i);
            h *= 0x100000001b3L;
        }
        return h;
    }

    private static long bits53(int hi, int lo) {
        return (((hi & 0xFFFFFFFFL) << 21) ^ ((lo & 0xFFFFFFFFL) >>> 11)) & ((1L << 53) - 1);
    }
}
