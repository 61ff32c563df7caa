package io.slope.api.runs;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micronaut.context.ApplicationContext;
import io.slope.api.config.TemporalSettings;
import io.slope.api.orchestration.RunWorkflows;
import io.slope.spec.RunSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.RunOptions;
import io.temporal.client.WorkflowClient;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Records the workflows RunService asks to start and the ranks it sets instead of sending them, so the runs of a test
 * are rows only; throws {@code failure} on a start instead when it has one.
 */
final class RecordedStarts extends RunWorkflows {
    final List<String> started = new CopyOnWriteArrayList<>();
    final List<Integer> ranksSet = new CopyOnWriteArrayList<>();
    private final RuntimeException failure;

    RecordedStarts(ApplicationContext context, RuntimeException failure) {
        super(context.getBean(WorkflowClient.class), context.getBean(TemporalSettings.class),
                new SimpleMeterRegistry());
        this.failure = failure;
    }

    @Override
    public void start(String runId, String owner, RunSpec spec, RunOptions runOptions, Stage fromStage,
            Map<Stage, StageResult> earlierResults) {
        if (failure != null) {
            throw failure;
        }
        started.add(runId);
    }

    @Override
    public void setRanks(String runId, int ranks) {
        ranksSet.add(ranks);
    }
}
