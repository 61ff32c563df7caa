package io.slope.workflows.run;

/**
 * One rank's part of a data-parallel chunk: rank 0 opens the collective and hands its id to the workflow through
 * {@link SlopeRunWorkflow#collectiveReady}; ranks 1…{@code ranks}−1 join with {@code collectiveId}. {@code group}
 * numbers the workflow's attempts at the chunk, so a late rendezvous from an abandoned attempt is refused.
 */
public record RankedChunk(ChunkRequest chunk, int rank, int ranks, int group, String collectiveId) {}
