package io.slope.engine.rng;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Philox-4x32-10 against the Random123 known-answer vectors (so a GPU kernel that reproduces cuRAND/Random123 draws the
 * same numbers), plus sanity checks of the derived uniform and normal draws.
 */
class PhiloxTest {
    private static final long SEED = 1234;
    private static final int DRAWS = 100_000;

    /**
     * Random123 kat_vectors, "philox4x32 10": counter words c0..c3, key words k0, k1, expected output words. Passed
     * through {@link Philox#block}'s documented mapping: index = c1:c0, stream = c3:c2, seed = k1:k0 (high:low).
     */
    @Test
    void blockMatchesRandom123KnownAnswerVectors() {
        assertKnownAnswer(new int[] {0, 0, 0, 0}, new int[] {0, 0},
                new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
        assertKnownAnswer(new int[] {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, new int[] {0xffffffff, 0xffffffff},
                new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
        assertKnownAnswer(new int[] {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                new int[] {0xa4093822, 0x299f31d0},
                new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
    }

    private static void assertKnownAnswer(int[] counter, int[] key, int[] expected) {
        long index = words(counter[1], counter[0]);
        long stream = words(counter[3], counter[2]);
        long seed = words(key[1], key[0]);
        int[] actual = Philox.block(seed, stream, index);
        assertArrayEquals(expected, actual, () -> "counter " + hex(counter) + " key " + hex(key) + ": got "
                + hex(actual) + ", expected " + hex(expected));
    }

    @Test
    void uniformIsA53BitDrawWithTheMeanAndVarianceOfUniformZeroOne() {
        long stream = Philox.stream("test.uniform");
        double sum = 0;
        double sumSq = 0;
        int beyond32Bits = 0;
        for (int i = 0; i < DRAWS; i++) {
            double u = Philox.uniform(SEED, stream, i);
            assertTrue(u >= 0.0 && u < 1.0, "uniform out of [0, 1): " + u);
            double scaled = u * 0x1.0p53;
            assertEquals(Math.rint(scaled), scaled, 0.0, "uniform on the 2^-53 grid");
            // A draw built from one 32-bit word would sit on the 2^-32 grid; 53 bits almost never do.
            beyond32Bits += u * 0x1.0p32 != Math.rint(u * 0x1.0p32) ? 1 : 0;
            sum += u;
            sumSq += u * u;
        }
        assertTrue(beyond32Bits > DRAWS * 0.99, "uniform carries more than 32 random bits: " + beyond32Bits);
        double mean = sum / DRAWS;
        double variance = sumSq / DRAWS - mean * mean;
        // Standard errors over 1e5 draws: mean √(1/12/n) ≈ 9.1e-4, variance √(1/180/n) ≈ 2.4e-4; bounds ≈ 5 SE.
        assertEquals(0.5, mean, 0.0046, "uniform mean");
        assertEquals(1.0 / 12.0, variance, 0.0012, "uniform variance");
    }

    @Test
    void uniformFillsTheUnitIntervalEvenly() {
        // Ten equal bins: a generator that ignores half its bits or folds the interval would skew them.
        long stream = Philox.stream("test.uniform.bins");
        int[] bins = new int[10];
        for (int i = 0; i < DRAWS; i++) {
            bins[(int) (Philox.uniform(SEED, stream, i) * 10)]++;
        }
        double expected = DRAWS / 10.0;
        double chiSquare = 0;
        for (int b : bins) {
            chiSquare += (b - expected) * (b - expected) / expected;
        }
        // 9 degrees of freedom: P(χ² > 27.9) ≈ 0.001.
        assertTrue(chiSquare < 27.9, "χ² over 10 bins = " + chiSquare);
    }

    @Test
    void normalHasZeroMeanUnitStdAndGaussianMass() {
        long stream = Philox.stream("test.normal");
        double sum = 0;
        double sumSq = 0;
        int withinOneSigma = 0;
        for (int i = 0; i < DRAWS; i++) {
            double z = Philox.normal(SEED, stream, i);
            assertTrue(Double.isFinite(z), "normal not finite: " + z);
            sum += z;
            sumSq += z * z;
            if (Math.abs(z) < 1.0) {
                withinOneSigma++;
            }
        }
        double mean = sum / DRAWS;
        double std = Math.sqrt(sumSq / DRAWS - mean * mean);
        // SE: mean 1/√n ≈ 3.2e-3, std 1/√(2n) ≈ 2.2e-3, P(|z|<1) √(.68·.32/n) ≈ 1.5e-3; bounds ≈ 5 SE.
        assertEquals(0.0, mean, 0.016, "normal mean");
        assertEquals(1.0, std, 0.011, "normal std");
        // Mean and std alone would pass a scaled uniform; the mass within one sigma pins the shape.
        assertEquals(0.682689, (double) withinOneSigma / DRAWS, 0.0075, "P(|z| < 1)");
    }

    @Test
    void uniformLongStaysBelowItsBoundAndRejectsNonPositiveBounds() {
        long stream = Philox.stream("test.uniformLong");
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 1000; i++) {
            long v = Philox.uniformLong(SEED, stream, i, 7);
            assertTrue(v >= 0 && v < 7, "uniformLong out of [0, 7): " + v);
            seen.add(v);
        }
        assertEquals(7, seen.size(), "every value of [0, 7) drawn in 1000 tries");
        assertThrows(IllegalArgumentException.class, () -> Philox.uniformLong(SEED, stream, 0, 0));
    }

    @Test
    void drawsArePureFunctionsOfSeedStreamAndIndex() {
        long stream = Philox.stream("test.determinism");
        // Same arguments, any order, same values: what lets any element be regenerated anywhere.
        for (long index : new long[] {0, 1, 12345, 1L << 40}) {
            assertEquals(Philox.uniform(SEED, stream, index), Philox.uniform(SEED, stream, index));
            assertEquals(Philox.normal(SEED, stream, index), Philox.normal(SEED, stream, index));
            assertArrayEquals(Philox.block(SEED, stream, index), Philox.block(SEED, stream, index));
        }
        // Changing any one coordinate (including only the high word of each) changes the draw.
        double base = Philox.uniform(SEED, stream, 5);
        assertNotEquals(base, Philox.uniform(SEED, stream + 1, 5), "stream");
        assertNotEquals(base, Philox.uniform(SEED, stream ^ (1L << 40), 5), "stream high word");
        assertNotEquals(base, Philox.uniform(SEED, stream, 6), "index");
        assertNotEquals(base, Philox.uniform(SEED, stream, 5 | (1L << 40)), "index high word");
        assertNotEquals(base, Philox.uniform(SEED + 1, stream, 5), "seed");
        assertNotEquals(base, Philox.uniform(SEED | (1L << 40), stream, 5), "seed high word");
    }

    @Test
    void streamIdsAreFnv1a64OfThePurposeName() {
        // Published FNV-1a 64 test vectors; ASCII chars hash as their bytes. Stream ids end up in checkpoints, so they
        // must never change.
        assertEquals(0xcbf29ce484222325L, Philox.stream(""));
        assertEquals(0xaf63dc4c8601ec8cL, Philox.stream("a"));
        assertEquals(0x85944171f73967e8L, Philox.stream("foobar"));
    }

    private static long words(int high, int low) {
        return ((long) high << 32) | (low & 0xFFFFFFFFL);
    }

    private static String hex(int[] words) {
        StringBuilder s = new StringBuilder("{");
        for (int i = 0; i < words.length; i++) {
            s.append(i == 0 ? "" : ", ").append(String.format("0x%08x", words[i]));
        }
        return s.append('}').toString();
    }
}
