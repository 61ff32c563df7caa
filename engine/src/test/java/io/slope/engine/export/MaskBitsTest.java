package io.slope.engine.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The bit layout docs/formats.md documents for slope/ masks, on a hand-worked example. */
class MaskBitsTest {
    @Test
    void packsEachRowLeastSignificantBitFirstIntoWholeBytes() {
        byte[] mask = new byte[2 * 10];
        for (int c : new int[] {0, 1, 8}) {
            mask[c] = 1; // row 0
        }
        for (int c : new int[] {7, 9}) {
            mask[10 + c] = 1; // row 1
        }
        byte[] packed = {0b0000_0011, 0b0000_0001, (byte) 0b1000_0000, 0b0000_0010};
        assertArrayEquals(packed, MaskBits.pack(mask, 2, 10));
        assertArrayEquals(mask, MaskBits.unpack(packed, 2, 10));
    }

    @Test
    void refusesSetPaddingBitsAndEntriesOtherThanZeroOrOne() {
        assertThrows(IllegalArgumentException.class, () -> MaskBits.unpack(new byte[] {0, 0b0000_0100}, 1, 10));
        assertThrows(IllegalArgumentException.class, () -> MaskBits.pack(new byte[] {0, 2}, 1, 2));
    }
}
