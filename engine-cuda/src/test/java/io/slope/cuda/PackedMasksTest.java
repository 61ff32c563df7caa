package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The host side of the GPU's compact masks (no GPU needed): the layout the kernels read, the conversions to and from
 * the Backend's forms, which must be exact inverses, and what cannot be held refused.
 */
class PackedMasksTest {
    @Test
    void rowMaskIsEachKeptEntrysOffsetInItsGroup() {
        // 2:4 over 8 columns: row 0 keeps {1, 2 | 4, 7}, row 1 keeps {0, 3 | 5, 6}.
        int[] kept = {1, 2, 4, 7, 0, 3, 5, 6};
        byte[] offsets = PackedMasks.rowOffsets(kept, 2, 8, NmPattern.twoFour());
        assertArrayEquals(new byte[] {1, 2, 0, 3, 0, 3, 1, 2}, offsets);
        assertArrayEquals(kept, PackedMasks.rowIndices(offsets, 2, 8, NmPattern.twoFour()));
    }

    @Test
    void columnMaskIsOneBitPerWeightAlongDOut() {
        // 33 rows × 2 columns: two words per column pair, bit r % 32 of word (r / 32)·dIn + c.
        byte[] mask = new byte[33 * 2];
        mask[0 * 2 + 0] = 1;
        mask[31 * 2 + 1] = 1;
        mask[32 * 2 + 0] = 1;
        mask[5 * 2 + 1] = 1;
        int[] words = PackedMasks.packColumnMask(mask, 33, 2);
        assertArrayEquals(new int[] {1, (1 << 31) | (1 << 5), 1, 0}, words);
        assertArrayEquals(mask, PackedMasks.unpackColumnMask(words, 33, 2));
    }

    @Test
    void referenceMasksRoundTripExactly() {
        SplittableRandom random = new SplittableRandom(14);
        int[][] shapes = {{40, 40}, {64, 96}, {96, 24}, {60, 120}};
        for (NmPattern p : List.of(new NmPattern(2, 4), new NmPattern(1, 4), new NmPattern(2, 8),
                new NmPattern(3, 4), new NmPattern(1, 2), new NmPattern(2, 5))) {
            for (int[] s : shapes) {
                int dOut = s[0];
                int dIn = s[1];
                if (dOut % p.m() != 0 || dIn % p.m() != 0) {
                    continue;
                }
                double[] w = new double[dOut * dIn];
                for (int i = 0; i < w.length; i++) {
                    w[i] = random.nextInt(9) - 4; // ties and zeros
                }
                int[] kept = NmMasks.rowKeptIndices(w, dOut, dIn, p);
                byte[] column = NmMasks.columnMask(NmMasks.scatterKept(NmMasks.gatherKept(w, kept, dOut, dIn), kept,
                        dOut, dIn), dOut, dIn, p);
                String what = p + " " + dOut + "×" + dIn;
                byte[] offsets = PackedMasks.rowOffsets(kept, dOut, dIn, p);
                assertEquals(PackedMasks.rowMaskBytes(dOut, dIn, p), offsets.length, what);
                assertArrayEquals(kept, PackedMasks.rowIndices(offsets, dOut, dIn, p), what);
                int[] words = PackedMasks.packColumnMask(column, dOut, dIn);
                assertEquals(PackedMasks.columnMaskWords(dOut, dIn), words.length, what);
                assertArrayEquals(column, PackedMasks.unpackColumnMask(words, dOut, dIn), what);
            }
        }
    }

    @Test
    void twoFourTakesFiveEighthsOfAByteAWeight() {
        // GPT-2's fc layer: 0.5 (a byte per kept weight) + 0.125 (a bit per weight) = 0.625 bytes per weight.
        int dOut = 3072;
        int dIn = 768;
        double weights = (double) dOut * dIn;
        assertEquals(0.5, PackedMasks.rowMaskBytes(dOut, dIn, NmPattern.twoFour()) / weights);
        assertEquals(0.125, 4 * PackedMasks.columnMaskWords(dOut, dIn) / weights);
    }

    @Test
    void rowMasksThatAreNotNOfEveryMAreRefused() {
        NmPattern p = NmPattern.twoFour();
        int[][] bad = {
            {0, 1, 2, 5}, // three in the first group, one in the second
            {2, 1, 4, 5}, // decreasing within a group
            {1, 1, 4, 5}, // repeated
            {0, 1, 4, 8}, // past d_in
            {-1, 1, 4, 5},
        };
        for (int[] kept : bad) {
            var e = assertThrows(IllegalArgumentException.class, () -> PackedMasks.rowOffsets(kept, 1, 8, p));
            assertTrue(e.getMessage().contains("exactly 2 of every 4"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> PackedMasks.rowOffsets(new int[] {0, 1}, 1, 8, p));
        assertThrows(IllegalArgumentException.class,
                () -> PackedMasks.rowOffsets(new int[] {0}, 1, 512, new NmPattern(1, 512)));
    }

    @Test
    void columnMaskBytesOtherThanZeroAndOneAreRefused() {
        byte[] mask = new byte[8];
        mask[3] = 2;
        var e = assertThrows(IllegalArgumentException.class, () -> PackedMasks.packColumnMask(mask, 2, 4));
        assertTrue(e.getMessage().contains("(0, 3) is 2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PackedMasks.packColumnMask(new byte[7], 2, 4));
    }
}
