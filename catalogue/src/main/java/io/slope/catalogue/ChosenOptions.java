package io.slope.catalogue;

import io.slope.workflows.run.RunOptions;

/**
 * The run options a submit chose ({@code "options"} beside the spec's fields) and the catalogue stores with the run:
 * null where the run took the service's default ({@link RunOptions#DEFAULT}). How a run is driven, not what it
 * computes, so they are not part of the spec.
 */
public record ChosenOptions(Integer ranks, Integer chunkSteps, Integer keepLastCheckpoints) {
    public static final ChosenOptions NONE = new ChosenOptions(null, null, null);

    /** What the workflow is started with: the default with these in place of it. */
    public RunOptions resolve() {
        return resolve(RunOptions.DEFAULT);
    }

    /** {@code defaults} with these in place of them. */
    public RunOptions resolve(RunOptions defaults) {
        return defaults.overriddenBy(chunkSteps, keepLastCheckpoints, ranks);
    }
}
