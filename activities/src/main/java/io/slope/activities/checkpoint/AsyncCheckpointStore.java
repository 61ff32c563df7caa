package io.slope.activities.checkpoint;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CheckpointInfo;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Asynchronous checkpoints (docs/architecture.md §3): {@link #write} returns as soon as the checkpoint is handed to a
 * background thread, which hashes, uploads and commits it through the wrapped store, so the step loop waits only for
 * the device→host snapshot it already took. At most one checkpoint is in flight: a second write first waits for the
 * first. A failed background write is thrown by the next call. Callers that need the checkpoint committed (a chunk's
 * end) call {@link #flush}; reads and deletes flush first.
 *
 * <p>Relaxes one word of {@link CheckpointStore#write}'s contract: the checkpoint is durable when {@link #flush}
 * returns, not when write does; the {@link CheckpointInfo} returned is provisional (location "pending", no manifest
 * hash). A crash before the upload completes loses that checkpoint only, and restore falls back to the one before.
 */
public final class AsyncCheckpointStore implements CheckpointStore, AutoCloseable {
    private final CheckpointStore store;
    private final ExecutorService uploader;
    private Future<CheckpointInfo> inFlight;

    public AsyncCheckpointStore(CheckpointStore store) {
        this.store = store;
        this.uploader = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().daemon().name("checkpoint-upload")
                .unstarted(r));
    }

    @Override
    public synchronized CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException {
        flush();
        inFlight = uploader.submit(() -> store.write(checkpoint, writerAttempt));
        return new CheckpointInfo(checkpoint.step(), "pending", "");
    }

    /** Waits for the checkpoint in flight, if any, to be committed; throws what its write threw. */
    public synchronized CheckpointInfo flush() throws IOException {
        if (inFlight == null) {
            return null;
        }
        Future<CheckpointInfo> pending = inFlight;
        inFlight = null;
        try {
            return pending.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while a checkpoint was being written", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            if (cause instanceof UncheckedIOException unchecked) {
                throw unchecked.getCause();
            }
            if (cause instanceof RuntimeException runtime) {
                throw runtime;
            }
            throw new IOException("checkpoint write failed: " + cause, cause);
        }
    }

    @Override
    public synchronized List<Long> committedSteps() throws IOException {
        flush();
        return store.committedSteps();
    }

    @Override
    public synchronized LoadedCheckpoint load(long step) throws IOException {
        flush();
        return store.load(step);
    }

    @Override
    public synchronized void delete(long step) throws IOException {
        flush();
        store.delete(step);
    }

    /** Flushes, then stops the background thread. */
    @Override
    public void close() throws IOException {
        try {
            flush();
        } finally {
            uploader.shutdown();
        }
    }
}
