package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RunOptionsTest {
    @Test
    void storedOptionsReplaceOnlyWhatTheyChose() {
        RunOptions defaults = new RunOptions(500, 20, 2, 3, 1);
        assertEquals(defaults, defaults.overriddenBy(null, null, null));
        assertEquals(new RunOptions(7, 20, 2, 3, 4), defaults.overriddenBy(7, null, 4));
        assertEquals(new RunOptions(500, 20, 9, 3, 1), defaults.overriddenBy(null, 9, null));
    }

    @Test
    void ranksMustBeInRangeAndDivideTheMicroBatchesOfAStep() {
        assertNull(RunOptions.ranksProblem(1, 1));
        assertNull(RunOptions.ranksProblem(4, 8));
        assertNull(RunOptions.ranksProblem(64, 128));
        assertEquals("must be 1 to 64 (got 0)", RunOptions.ranksProblem(0, 8));
        assertEquals("must be 1 to 64 (got 65)", RunOptions.ranksProblem(65, 130));
        String problem = RunOptions.ranksProblem(3, 8);
        assertTrue(problem.contains("training.gradAccum must be a multiple of ranks: use ranks 1, 2, 4, 8, or set "
                + "training.gradAccum to a multiple of 3"), problem);
        assertEquals("ranks: " + problem, RunOptions.ranksError(3, 8));
    }
}
