package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AdapterScheduleTest {

    @ParameterizedTest(name = "dModel {0} -> rank {1}")
    @CsvSource({
        "1, 4", "64, 4", "128, 4", "383, 4", "384, 8", "639, 8", "640, 12", "768, 12", "1024, 16", "1280, 20",
        "1600, 24", "4096, 64", "8192, 128"
    })
    void defaultAdapterRankIsOnePointFiveSixPercentOfDModelRoundedToAMultipleOfFourAndAtLeastFour(int dModel,
            int rank) {
        assertEquals(rank, RunSpecs.defaultAdapterRank(dModel));
    }

    @ParameterizedTest(name = "start {0} of {1} steps -> step {2}")
    @CsvSource({
        "0.99, 1000, 990", "0.99, 100, 99", "0.99, 10, 9", "0.99, 1, 0", "1, 500, 500", "0.5, 7, 3",
        "0.29, 100, 29", "0.57, 100, 57", "0.999, 1000, 999", "0.01, 1, 0"
    })
    void adaptersStartAtTheFloorOfStartTimesSteps(double start, int steps, int expectedStep) {
        ResolvedSpec spec = Specs.resolved("\"adapters\": {\"start\": " + start + "}, \"training\": {\"steps\": "
                + steps + "}");

        assertEquals(expectedStep, RunSpecs.adapterStartStep(spec));
    }

    @ParameterizedTest(name = "{0}, start {1} of 100 steps -> adapter phase from step {2}")
    @CsvSource({"slope, 0.99, 99", "sparse-no-double-prune, 0.5, 50", "slope, 1, 100", "dense, 0.99, 100",
        "dense, 0.5, 100"})
    void theAdapterPhaseStartsAtTheAdapterStepExceptInADenseRunWhichHasNone(String mode, double start, int step) {
        ResolvedSpec spec = Specs.resolved("\"sparsity\": {\"mode\": \"" + mode + "\"}, \"adapters\": {\"start\": "
                + start + "}, \"training\": {\"steps\": 100}");

        assertEquals(step, RunSpecs.adapterPhaseStart(spec));
    }
}
