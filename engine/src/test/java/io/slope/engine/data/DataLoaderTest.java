package io.slope.engine.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class DataLoaderTest {
    /** Token i is i, so a row's content tells where its window starts. */
    static final TokenSequence COUNTING = new ArrayTokens(IntStream.range(0, 10_000).toArray());

    @Test
    void sameSeedAndStepGiveTheSameBatchInAFreshLoader() {
        int[] first = new DataLoader(COUNTING, 42, 16, 8, 4).batch(1234, 3);
        int[] again = new DataLoader(COUNTING, 42, 16, 8, 4).batch(1234, 3);
        assertArrayEquals(first, again);
        assertEquals(8 * 17, first.length);
    }

    @Test
    void otherSeedStepOrMicroBatchGiveOtherBatches() {
        DataLoader loader = new DataLoader(COUNTING, 42, 16, 8, 4);
        int[] batch = loader.batch(10, 0);
        assertFalse(Arrays.equals(batch, loader.batch(11, 0)));
        assertFalse(Arrays.equals(batch, loader.batch(10, 1)));
        assertFalse(Arrays.equals(batch, new DataLoader(COUNTING, 43, 16, 8, 4).batch(10, 0)));
    }

    @Test
    void rowsAreContiguousWindowsOfTheirGlobalSample() {
        DataLoader loader = new DataLoader(COUNTING, 7, 16, 8, 4);
        int[] batch = loader.batch(5, 2);
        for (int row = 0; row < 8; row++) {
            long sample = (5L * 4 + 2) * 8 + row;
            assertEquals(sample, loader.globalSampleIndex(5, 2, row));
            int[] window = Arrays.copyOfRange(batch, row * 17, (row + 1) * 17);
            assertArrayEquals(loader.sample(sample), window);
            long start = loader.windowStart(sample);
            assertArrayEquals(IntStream.range((int) start, (int) start + 17).toArray(), window);
        }
    }

    @Test
    void anyNumberOfRanksTogetherReadTheSameGlobalBatch() {
        DataLoader loader = new DataLoader(COUNTING, 99, 16, 8, 2);
        for (long step : new long[] {0, 1, 500}) {
            for (int micro = 0; micro < 2; micro++) {
                int[] global = loader.batch(step, micro);
                for (int ranks : new int[] {1, 2, 4, 8}) {
                    int[] joined = new int[0];
                    for (int rank = 0; rank < ranks; rank++) {
                        int[] part = loader.rankBatch(step, micro, rank, ranks);
                        assertEquals(global.length / ranks, part.length);
                        joined = IntStream.concat(Arrays.stream(joined), Arrays.stream(part)).toArray();
                    }
                    assertArrayEquals(global, joined, "step " + step + ", micro-batch " + micro + ", " + ranks
                            + " ranks");
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> loader.rankBatch(0, 0, 0, 3));
    }

    @Test
    void windowStartsCoverEveryPossibleStartAndNothingElse() {
        TokenSequence small = new ArrayTokens(IntStream.range(0, 20).toArray());
        DataLoader loader = new DataLoader(small, 1, 4, 1, 1);
        int[] counts = new int[20];
        for (long sample = 0; sample < 16_000; sample++) {
            counts[(int) loader.windowStart(sample)]++;
        }
        // 16 possible starts (0..15): each close to 1000 times, none beyond
        for (int start = 0; start < 16; start++) {
            assertTrue(counts[start] > 850 && counts[start] < 1150, "start " + start + ": " + counts[start]);
        }
        assertEquals(0, counts[16] + counts[17] + counts[18] + counts[19]);
    }


    @Test
    void trainingSplitShorterThanOneWindowIsRefused() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> new DataLoader(new ArrayTokens(new int[10]), 1, 10, 1, 1));
        assertTrue(e.getMessage().startsWith("the training split has 10 tokens, fewer than one window of"
                + " seqLen + 1 = 11"), e.getMessage());
    }

    @Test
    void validationWindowsAreNonOverlappingInOrderAndDropTheRemainder() {
        TokenSequence validation = new ArrayTokens(IntStream.range(0, 50).toArray());
        ValidationWindows windows = ValidationWindows.all(validation, 9);
        assertEquals(5, windows.count());
        for (int i = 0; i < 5; i++) {
            assertArrayEquals(IntStream.range(i * 10, i * 10 + 10).toArray(), windows.window(i));
        }
        assertArrayEquals(IntStream.range(10, 40).toArray(), windows.windows(1, 3));

        ValidationWindows six = ValidationWindows.all(new ArrayTokens(IntStream.range(0, 65).toArray()), 9);
        assertEquals(6, six.count(), "the last 5 tokens do not make a window");
        ValidationWindows firstTwo = ValidationWindows.first(validation, 9, 2);
        assertEquals(2, firstTwo.count());
        assertArrayEquals(windows.windows(0, 2), firstTwo.windows(0, 2));
        assertThrows(IndexOutOfBoundsException.class, () -> firstTwo.window(2));
    }

    @Test
    void validationSplitShorterThanOneWindowIsRefused() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> ValidationWindows.all(new ArrayTokens(new int[5]), 9));
        assertEquals("the validation split has 5 tokens, fewer than one window of seqLen + 1 = 10", e.getMessage());
    }

    /** Tokens in memory. */
}
