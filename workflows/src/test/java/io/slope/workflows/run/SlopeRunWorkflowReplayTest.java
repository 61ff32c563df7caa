package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertFalse;

import io.slope.workflows.converter.SlopeDataConverter;
import io.temporal.testing.WorkflowReplayer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Replays the workflow histories committed under src/test/resources/histories/ against today's workflow code, so a
 * change that is not replay-compatible (nondeterministic for runs already in flight) fails CI. Histories are refreshed
 * only deliberately: mvn -pl workflows test -Dtest=SlopeRunWorkflowTest -Dslope.refreshHistories=true.
 */
class SlopeRunWorkflowReplayTest {
    @Test
    void committedHistoriesReplay() throws Exception {
        List<Path> histories;
        try (Stream<Path> files = Files.list(Path.of("src/test/resources/histories"))) {
            histories = files.filter(f -> f.toString().endsWith(".json")).sorted().toList();
        }
        assertFalse(histories.isEmpty(), "no committed histories to replay");
        for (Path history : histories) {
            WorkflowReplayer.replayWorkflowExecution(Files.readString(history), SlopeRunWorkflowImpl.class);
        }
    }
}
