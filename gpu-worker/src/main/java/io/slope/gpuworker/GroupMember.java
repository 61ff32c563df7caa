package io.slope.gpuworker;

import io.slope.engine.backend.Backends;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.workflows.run.CollectiveRendezvous;
import io.slope.workflows.run.RankedChunk;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.activity.ActivityExecutionContext;
import io.temporal.client.ActivityCanceledException;
import io.temporal.client.ActivityCompletionException;
import java.io.IOException;
import java.time.Duration;

/**
 * The worker's side of the data-parallel group protocol (ADR 040, 041): one rank of a group chunk, from its
 * rendezvous to its end. On cancellation (from the heartbeat thread) it aborts its collective, except rank 0 cancelled
 * for a pause, which stops gracefully and aborts only after {@link #PAUSE_GRACE}. The workflow's side is
 * {@code io.slope.workflows.run.DataParallelChunk}.
 */
final class GroupMember implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(GroupMember.class.getName());
    /**
     * How long rank 0 waits for its peers to join, and any rank for a silent peer, before taking it for dead (a rank
     * waits while rank 0 alone evaluates and checkpoints). Cancellation aborts sooner.
     */
    static final Duration COLLECTIVE_TIMEOUT = Duration.ofMinutes(2);
    /**
     * How long rank 0, cancelled for a pause, leaves its group to stop after an agreed step (with a checkpoint) before
     * it aborts its collective all the same: a peer may be dead.
     */
    static final Duration PAUSE_GRACE = Duration.ofSeconds(60);

    private final RankedChunk request;
    private final ActivityExecutionContext context;
    private volatile CollectiveProvider.Rendezvous host;
    private volatile Collective collective;
    private volatile ResidentModel model;
    private boolean ended;

    GroupMember(RankedChunk request, ActivityExecutionContext context) {
        this.request = request;
        this.context = context;
    }

    /**
     * Rank 0 listens and reports the collective's id to its workflow (which then starts the other ranks with it), then
     * waits for them; the other ranks join with the id. The spec's backend names the rendezvous: loopback TCP on the
     * CPU, NCCL on CUDA (on this process's GPU 0, the one the session then opens; ADR 041).
     */
    Collective rendezvous() throws IOException {
        CollectiveProvider provider = Backends.collectives(request.chunk().spec());
        if (request.rank() != 0) {
            collective = provider.join(request.collectiveId(), request.rank(), request.ranks(), COLLECTIVE_TIMEOUT);
            return collective;
        }
        host = provider.listen(request.ranks(), COLLECTIVE_TIMEOUT);
        workflow().collectiveReady(new CollectiveRendezvous(request.group(), host.uniqueId()));
        collective = host.awaitPeers();
        return collective;
    }

    /** The model this rank trains, opened on its collective; closed with the member. */
    void hold(ResidentModel opened) {
        model = opened;
    }

    /** What this rank's heartbeats report, once its model is open. */
    Heartbeater.Details details() {
        ResidentModel m = model;
        return m == null ? null : m.details();
    }

    /**
     * A heartbeat reported cancellation, timeout or shutdown. Rank 0 cancelled for a pause, its peers joined, lets the
     * training loop stop: its stop flag reaches every rank through the loop's agreed stop, so all stop after the same
     * step and rank 0 commits the checkpoint there. Any other stop aborts at once (before the peers have joined nothing
     * has been trained, and they may never come); a failing group cancels every rank, so rank 0's next collective
     * fails promptly too, whatever it decided.
     */
    void stopped(ActivityCompletionException e) {
        if (request.rank() == 0 && e instanceof ActivityCanceledException && collective != null && pauseRequested()) {
            LOG.log(System.Logger.Level.INFO, "rank 0 cancelled for a pause: the group stops after the next step "
                    + "with a checkpoint (aborting in " + PAUSE_GRACE.toSeconds() + " s otherwise)");
            Thread.ofVirtual().name("pause-grace").start(() -> {
                try {
                    Thread.sleep(PAUSE_GRACE);
                } catch (InterruptedException interrupted) {
                    return;
                }
                synchronized (this) {
                    if (!ended) {
                        LOG.log(System.Logger.Level.WARNING, "rank 0's group did not stop within "
                                + PAUSE_GRACE.toSeconds() + " s of the pause; aborting its collective");
                        abort();
                    }
                }
            });
            return;
        }
        abort();
    }

    /** The training loop has ended: a pause's grace has nothing left to abort. */
    synchronized void trained() {
        ended = true;
    }

    @Override
    public void close() {
        trained();
        try {
            if (model != null) {
                model.close();
            }
        } finally {
            closeHost();
            if (collective != null) {
                collective.close();
            }
        }
    }

    /**
     * Whether the run's workflow is pausing: rank 0 is cancelled alone for a pause (the group then stops gracefully),
     * with every other rank when a rank failed or the run is cancelled (each aborts at once). Unknown counts as no.
     */
    private boolean pauseRequested() {
        try {
            return workflow().progress().paused();
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "could not ask workflow " + context.getInfo().getWorkflowId()
                    + " whether it is pausing (" + e.getMessage() + "); aborting the collective");
            return false;
        }
    }

    private SlopeRunWorkflow workflow() {
        return context.getWorkflowClient().newWorkflowStub(SlopeRunWorkflow.class, context.getInfo().getWorkflowId());
    }

    /** No rank may stay blocked on a peer once the workflow has given the group up. */
    private void abort() {
        closeHost();
        Collective c = collective;
        if (c != null) {
            c.abort("the workflow cancelled this rank's chunk");
        }
    }

    private void closeHost() {
        CollectiveProvider.Rendezvous h = host;
        if (h != null) {
            try {
                h.close();
            } catch (IOException ignored) {
                // the listener is unusable either way
            }
        }
    }
}
