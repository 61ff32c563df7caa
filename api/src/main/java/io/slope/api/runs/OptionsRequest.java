package io.slope.api.runs;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.http.HttpStatus;
import io.slope.api.problem.Problem.FieldProblem;
import io.slope.api.problem.ProblemException;
import io.slope.catalogue.ChosenOptions;
import io.slope.spec.ResolvedSpec;
import io.slope.workflows.run.RunOptions;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/** The {@code "options"} of a submit, read and checked against the run's spec into the {@link ChosenOptions} stored. */
final class OptionsRequest {
    static final String FIELD = "options";
    static final int MAX_CHUNK_STEPS = 1_000_000;
    static final int MAX_KEEP_LAST_CHECKPOINTS = 1_000;

    private OptionsRequest() {}

    /**
     * Reads {@code options} of a submit (null or absent: none) and checks it against the resolved spec; a 400 naming
     * each wrong field ({@code options.ranks}, ...) and how to fix it otherwise.
     */
    static ChosenOptions parse(JsonNode node, ResolvedSpec resolved) {
        if (node == null || node.isNull()) {
            return ChosenOptions.NONE;
        }
        if (!node.isObject()) {
            throw ProblemException.badField(FIELD, "must be an object such as {\"ranks\": 2}; its fields: ranks, "
                    + "chunkSteps, keepLastCheckpoints");
        }
        List<FieldProblem> errors = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            String name = it.next().getKey();
            if (!List.of("ranks", "chunkSteps", "keepLastCheckpoints").contains(name)) {
                errors.add(new FieldProblem(FIELD + "." + name, "unknown option; allowed here: ranks, chunkSteps, "
                        + "keepLastCheckpoints"));
            }
        }
        Integer ranks = integer(node, "ranks", 1, RunOptions.MAX_RANKS, errors);
        Integer chunkSteps = integer(node, "chunkSteps", 1, MAX_CHUNK_STEPS, errors);
        Integer keepLast = integer(node, "keepLastCheckpoints", 1, MAX_KEEP_LAST_CHECKPOINTS, errors);
        if (ranks != null) {
            String problem = ranksProblem(ranks, resolved);
            if (problem != null) {
                errors.add(new FieldProblem(FIELD + ".ranks", problem));
            }
        }
        if (!errors.isEmpty()) {
            throw invalid(errors);
        }
        return new ChosenOptions(ranks, chunkSteps, keepLast);
    }

    /** Why the run of {@code resolved} cannot train on {@code ranks} ranks, with the fix; null when it can. */
    static String ranksProblem(int ranks, ResolvedSpec resolved) {
        return RunOptions.ranksProblem(ranks, resolved.training().gradAccum());
    }

    static ProblemException invalid(List<FieldProblem> errors) {
        return new ProblemException(HttpStatus.BAD_REQUEST, "invalid-request", "the run options are invalid: "
                + String.join("; ", errors.stream().map(e -> e.field() + ": " + e.message()).toList()), errors);
    }

    private static Integer integer(JsonNode options, String name, int min, int max, List<FieldProblem> errors) {
        JsonNode value = options.get(name);
        if (value == null || value.isNull()) {
            return null;
        }
        if (!value.isIntegralNumber() || !value.canConvertToInt() || value.intValue() < min
                || value.intValue() > max) {
            errors.add(new FieldProblem(FIELD + "." + name, "must be a whole number from " + min + " to " + max
                    + " (got " + value + ")"));
            return null;
        }
        return value.intValue();
    }
}
