package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class DataParallelTest {

    @Test
    void ranksFitWhenTheyDivideTheMicroBatchesOfAStep() {
        assertTrue(DataParallel.fits(1, 1));
        assertTrue(DataParallel.fits(4, 8));
        assertFalse(DataParallel.fits(3, 8));
        assertFalse(DataParallel.fits(0, 8));
        assertEquals("3 ranks cannot share training.gradAccum = 8 micro-batches per step (rank r takes micro-batches "
                + "r, r + 3, …)", DataParallel.whyNot(3, 8));
        assertEquals("1, 2, 4, 8", DataParallel.fittingRanks(8, 64));
        assertEquals("1, 2", DataParallel.fittingRanks(8, 3));
    }
}
