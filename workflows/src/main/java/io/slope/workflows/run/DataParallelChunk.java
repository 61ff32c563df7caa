package io.slope.workflows.run;

import io.temporal.activity.ActivityCancellationType;
import io.temporal.activity.ActivityOptions;
import io.temporal.common.RetryOptions;
import io.temporal.failure.ActivityFailure;
import io.temporal.failure.CanceledFailure;
import io.temporal.workflow.Async;
import io.temporal.workflow.CancellationScope;
import io.temporal.workflow.Functions;
import io.temporal.workflow.Promise;
import io.temporal.workflow.Workflow;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.IntSupplier;
import org.slf4j.Logger;

/**
 * The workflow's side of the data-parallel group protocol (ADR 040, 041): each chunk is trained by a group of ranks on
 * {@link TaskQueues#GPU} (one slot each), restored from the last committed checkpoint. Rank 0 starts first and reports
 * its collective's id by the {@code collectiveReady} Update, then ranks 1…N−1 start with it. When any rank fails or
 * stops heartbeating, every rank is cancelled (which aborts the collective) and the chunk starts again from the last
 * committed checkpoint with the rank count current then ({@code setRanks}). A pause cancels rank 0 alone (its own
 * scope within the group's), whose stop reaches every rank at the next step: all stop after that step, rank 0 with a
 * committed checkpoint ({@value #GRACEFUL_GROUP_PAUSE}, version 1; before, a pause cancelled the whole group like a
 * failure). The worker's side is {@code io.slope.gpuworker.GroupMember}.
 *
 * <p>Part of {@link SlopeRunWorkflowImpl}'s state: it runs on the workflow's threads, deterministic code only.
 */
final class DataParallelChunk {
    private static final Logger log = Workflow.getLogger(DataParallelChunk.class);

    /**
     * Before version 1 a pause cancelled every rank of a group chunk, which aborted the collective at once and lost the
     * steps since the last checkpoint; since, it cancels rank 0 alone, whose stop reaches every rank at the next step.
     */
    static final String GRACEFUL_GROUP_PAUSE = "graceful-group-pause";

    private static final int MAX_GROUP_ATTEMPTS = 20;

    private final IntSupplier ranks;
    private final BooleanSupplier paused;
    private final Functions.Func1<ChunkRequest, ChunkResult> alone;

    /** The number of the current chunk attempt, and the collective id its rank 0 reported (or null). */
    private int group;
    private boolean awaitingRendezvous;
    private String collectiveId;
    /** The current attempt's scope, which holds every rank's activity. */
    private CancellationScope groupScope;
    /**
     * Rank 0's own scope within the current attempt once every rank is scheduled (graceful group pause only), and
     * whether a pause cancelled it: rank 0 then stops after a step that every rank agrees on, with a checkpoint.
     */
    private CancellationScope rankZeroScope;
    private boolean stoppingForPause;

    /**
     * {@code ranks} is the workflow's rank count, read at each attempt (it may change between them); {@code paused}
     * whether the run is pausing; {@code alone} trains the chunk the one-rank way, once the rank count is 1.
     */
    DataParallelChunk(IntSupplier ranks, BooleanSupplier paused, Functions.Func1<ChunkRequest, ChunkResult> alone) {
        this.ranks = ranks;
        this.paused = paused;
        this.alone = alone;
    }

    /**
     * One chunk trained by the current number of ranks; null when it was stopped for a pause. A failed attempt (any
     * rank failed, timed out or could not rendezvous) cancels the whole group and starts again from the last committed
     * checkpoint, with the rank count current then; one rank goes the ordinary way.
     */
    ChunkResult train(ChunkRequest request) {
        for (int failures = 0; ; ) {
            if (ranks.getAsInt() == 1) {
                return alone.apply(request);
            }
            boolean gracefulPause = Workflow.getVersion(GRACEFUL_GROUP_PAUSE, Workflow.DEFAULT_VERSION, 1) >= 1;
            int size = ranks.getAsInt();
            int attempt = ++group;
            collectiveId = null;
            awaitingRendezvous = true;
            stoppingForPause = false;
            ModelActivities stub = rankStub(request.maxMinutes());
            List<Promise<ChunkResult>> members = new ArrayList<>();
            CancellationScope scope = Workflow.newCancellationScope(() -> {
                CancellationScope zero = Workflow.newCancellationScope(() -> members.add(Async.function(
                        stub::trainChunkAsRank, new RankedChunk(request, 0, size, attempt, null))));
                zero.run();
                Promise<ChunkResult> rankZero = members.getFirst();
                Async.procedure(() -> {
                    Workflow.await(() -> collectiveId != null || rankZero.isCompleted());
                    awaitingRendezvous = false;
                    if (collectiveId != null && !rankZero.isCompleted()) {
                        for (int rank = 1; rank < size; rank++) {
                            members.add(Async.function(stub::trainChunkAsRank,
                                    new RankedChunk(request, rank, size, attempt, collectiveId)));
                        }
                        if (gracefulPause) {
                            rankZeroScope = zero;
                        }
                    }
                });
            });
            groupScope = scope;
            try {
                scope.run();
                Workflow.await(() -> groupFailure(members) != null
                        || (members.getFirst().isCompleted() && members.stream().allMatch(Promise::isCompleted)));
                RuntimeException failure = groupFailure(members);
                if (failure == null) {
                    // Every rank ended; rank 0 either finished the chunk or stopped for a pause after the agreed step,
                    // its checkpoint committed (the next chunk restores it).
                    Promise<ChunkResult> zero = members.getFirst();
                    return zero.getFailure() == null ? zero.get() : null;
                }
                // Cancel every rank: each aborts its collective, so none waits on the one that failed; wait for all
                // of them (WAIT_CANCELLATION_COMPLETED) before the next attempt takes their slots.
                scope.cancel("a rank of chunk attempt " + attempt + " failed: " + Failures.message(failure));
                Workflow.await(() -> members.stream().allMatch(Promise::isCompleted));
                if (CancellationScope.current().isCancelRequested()) {
                    throw failure;
                }
                if (paused.getAsBoolean() || stoppingForPause) {
                    // Stopped for a pause. A rank may report its aborted collective rather than the cancellation
                    // (its peer aborted first); either way the chunk resumes from the last committed checkpoint.
                    return null;
                }
                if (failure instanceof ActivityFailure a && Failures.isNonRetryable(a)) {
                    throw failure;
                }
                failures++;
                if (failures >= MAX_GROUP_ATTEMPTS) {
                    throw failure;
                }
                log.info("run {}: chunk attempt {} on {} ranks failed ({}); restarting from the last committed "
                        + "checkpoint", request.runId(), attempt, size, Failures.message(failure));
                Workflow.sleep(Duration.ofSeconds(Math.min(10, failures)));
            } finally {
                groupScope = null;
                rankZeroScope = null;
                stoppingForPause = false;
                awaitingRendezvous = false;
            }
        }
    }

    /**
     * Stops the running attempt for a pause, if there is one: once every rank is started, rank 0 alone is cancelled;
     * it asks every rank to stop after the same step and commits the checkpoint there, the others end their chunk
     * normally. Before that the whole group is cancelled. False when no attempt is running.
     */
    boolean cancelForPause() {
        if (rankZeroScope != null) {
            stoppingForPause = true;
            rankZeroScope.cancel("pause requested");
            return true;
        }
        if (groupScope != null) {
            groupScope.cancel("pause requested");
            return true;
        }
        return false;
    }

    /** The {@code collectiveReady} Update: rank 0's collective id, which starts the other ranks. */
    void collectiveReady(CollectiveRendezvous rendezvous) {
        collectiveId = rendezvous.collectiveId();
    }

    /** Only the awaited attempt's first report is taken; a late one from an abandoned attempt is refused. */
    void validateCollectiveReady(CollectiveRendezvous rendezvous) {
        if (rendezvous == null || !CollectiveRendezvous.wellFormed(rendezvous.collectiveId())) {
            throw new IllegalArgumentException("collectiveId must be host:port:nonce or nccl:<base64> (got "
                    + (rendezvous == null ? null : rendezvous.collectiveId()) + ")");
        }
        if (!awaitingRendezvous || rendezvous.group() != group) {
            throw new IllegalStateException("no rendezvous is awaited for chunk attempt " + rendezvous.group()
                    + (awaitingRendezvous ? " (the current attempt is " + group + ")" : ""));
        }
        if (collectiveId != null) {
            throw new IllegalStateException("chunk attempt " + group + " has its collective already");
        }
    }

    /**
     * The failure of the first rank (in rank order) that failed, or null; rank 0 cancelled for a pause has not failed
     * the group (its stop reaches the other ranks, which end their chunk normally).
     */
    private RuntimeException groupFailure(List<Promise<ChunkResult>> members) {
        for (int rank = 0; rank < members.size(); rank++) {
            Promise<ChunkResult> member = members.get(rank);
            if (member.isCompleted() && member.getFailure() != null) {
                if (rank == 0 && stoppingForPause && member.getFailure() instanceof ActivityFailure a
                        && a.getCause() instanceof CanceledFailure) {
                    continue;
                }
                return member.getFailure();
            }
        }
        return null;
    }

    /** A group's ranks: one attempt each (the workflow restarts the whole group), on any GPU worker. */
    private static ModelActivities rankStub(int chunkMinutes) {
        return Workflow.newActivityStub(ModelActivities.class, ActivityOptions.newBuilder()
                .setTaskQueue(TaskQueues.GPU)
                .setStartToCloseTimeout(Duration.ofMinutes(chunkMinutes + 30L))
                .setHeartbeatTimeout(Duration.ofSeconds(15))
                .setCancellationType(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
                .setRetryOptions(RetryOptions.newBuilder().setMaximumAttempts(1).build())
                .build());
    }
}
