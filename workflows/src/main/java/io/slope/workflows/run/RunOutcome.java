package io.slope.workflows.run;

import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import java.util.Map;

/** What a succeeded run returns: every stage's result. */
public record RunOutcome(String runId, String status, Map<Stage, StageResult> results) {}
