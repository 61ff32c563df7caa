package io.slope.activities.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.CheckpointInfo;
import io.slope.engine.checkpoint.CheckpointStore;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writes return before the upload; one is in flight at most; failures surface on the next call. */
class AsyncCheckpointStoreTest {
    /** The real local store, held at a gate so the test decides when an upload finishes. */
    private static final class GatedStore implements CheckpointStore {
        final LocalCheckpointStore real;
        final CountDownLatch gate = new CountDownLatch(1);
        final AtomicInteger started = new AtomicInteger();
        volatile boolean fail;

        GatedStore(Path dir) {
            real = new LocalCheckpointStore(dir);
        }

        @Override
        public CheckpointInfo write(Checkpoint checkpoint, String writerAttempt) throws IOException {
            started.incrementAndGet();
            try {
                gate.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            if (fail) {
                throw new IOException("s3 unreachable");
            }
            return real.write(checkpoint, writerAttempt);
        }

        @Override
        public List<Long> committedSteps() throws IOException {
            return real.committedSteps();
        }

        @Override
        public LoadedCheckpoint load(long step) throws IOException {
            return real.load(step);
        }

        @Override
        public void delete(long step) throws IOException {
            real.delete(step);
        }
    }

    @Test
    void writeReturnsBeforeTheCommitAndFlushWaitsForIt(@TempDir Path dir) throws Exception {
        GatedStore gated = new GatedStore(dir);
        try (AsyncCheckpointStore store = new AsyncCheckpointStore(gated)) {
            assertEquals("pending", store.write(S3CheckpointStoreTest.checkpoint(5), "a").location());
            assertEquals(List.of(), gated.real.committedSteps(), "not committed yet: the upload is held");
            Thread second = Thread.ofPlatform().start(() -> {
                try {
                    store.write(S3CheckpointStoreTest.checkpoint(10), "a");
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            Thread.sleep(300);
            assertTrue(second.isAlive(), "a second checkpoint waits while one is in flight");
            assertEquals(1, gated.started.get());
            gated.gate.countDown();
            second.join(10_000);
            assertEquals(10, store.flush().step());
            assertEquals(List.of(5L, 10L), store.committedSteps());
            assertEquals(S3CheckpointStoreTest.checkpoint(10).tensors(), store.load(10).checkpoint().tensors());
        }
    }

    @Test
    void aFailedBackgroundWriteIsThrownByTheNextCall(@TempDir Path dir) throws Exception {
        GatedStore gated = new GatedStore(dir);
        gated.fail = true;
        gated.gate.countDown();
        AsyncCheckpointStore store = new AsyncCheckpointStore(gated);
        store.write(S3CheckpointStoreTest.checkpoint(5), "a");
        IOException e = assertThrows(IOException.class, store::flush);
        assertEquals("s3 unreachable", e.getMessage());
        gated.fail = false;
        store.write(S3CheckpointStoreTest.checkpoint(5), "a");
        store.close();
        assertEquals(List.of(5L), gated.real.committedSteps());
    }
}
