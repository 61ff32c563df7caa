package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A cuSPARSELt algorithm survives its text in a checkpoint's kernel choices (issue 14); no GPU needed. */
class SparseAlgorithmTextTest {
    private static final String KEY = "cusparseLt m=768 k=512 n=256";

    @Test
    void anAlgorithmReadsBackFromItsText() {
        CusparseLt.Algorithm splitK = new CusparseLt.Algorithm(7, 4, 2, 3);

        assertEquals("config=7 splitK=4 splitKMode=2 splitKBuffers=3", splitK.toString());
        assertEquals(splitK, CusparseLt.Algorithm.parse(KEY, splitK.toString()));
    }

    @Test
    void aMalformedChoiceIsRefusedNamingItsKey() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CusparseLt.Algorithm.parse(KEY, "config=7"));

        assertTrue(e.getMessage().contains(KEY) && e.getMessage().contains("config=7"), e.getMessage());
    }
}
