package io.slope.engine.parallel;

import static io.slope.engine.parallel.SameModel.assertSameModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.model.Parameter;
import io.slope.engine.rng.Philox;
import io.slope.engine.run.TrainingSession;
import io.slope.engine.train.Trainer;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Data-parallel training over the loopback collective: N ranks train the same global batches as one rank (the sums
 * differ only in order, so fp64 results agree to rounding), the optimizer state is sharded, and checkpoints re-shard
 * onto any rank count.
 */
class DataParallelTrainingTest {
    private static final int STEPS = 8;
    /** fp64 runs that differ only in the order gradients are summed. */

    @TempDir
    Path dir;
    private final ExecutorService pool = Executors.newCachedThreadPool();
    private ResolvedSpec spec;

    @BeforeEach
    void dataset() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), randomText(20_000));
        spec = RunSpecCodec.parseResolved("""
                {"name": "dp", "model": {"layers": 2, "heads": 2, "dModel": 32, "seqLen": 16},
                 "sparsity": {"mode": "slope"}, "adapters": {"start": 0.75, "rank": 4},
                 "optimizer": {"lr": 0.01, "warmupSteps": 2},
                 "training": {"steps": %d, "batchSize": 2, "gradAccum": 6, "seed": 3},
                 "data": {"corpus": ["corpus.txt"]}, "eval": {"every": 0, "maxWindows": 4},
                 "checkpointEvery": 3, "backend": "cpu", "precision": "fp64", "threads": 1}
                """.formatted(STEPS));
        Corpus corpus = Corpus.read(List.of(dir.resolve("corpus.txt")));
        Dataset.prepare(corpus, Tokenizers.forCorpus("char", corpus), 0.1, Dataset.DEFAULT_TOKENS_PER_SHARD,
                dir.resolve("dataset")).close();
    }

    @AfterEach
    void shutdown() {
        pool.shutdownNow();
    }

    @Test
    void twoRanksTrainTheSameModelAsOne() throws Exception {
        train("one", 1, STEPS);
        train("two", 2, STEPS);
        assertSameModel(finalCheckpoint("one"), finalCheckpoint("two"));
    }

    @Test
    void aCheckpointFromTwoRanksResumesOnOneAndOnThree() throws Exception {
        train("straight", 1, STEPS);
        train("to-one", 2, 5);
        train("to-one", 1, STEPS);
        train("to-three", 2, 5);
        train("to-three", 3, STEPS);
        assertSameModel(finalCheckpoint("straight"), finalCheckpoint("to-one"));
        assertSameModel(finalCheckpoint("straight"), finalCheckpoint("to-three"));
    }

    @Test
    void eachRankHoldsMomentsOnlyForItsShardAndTheShardsCoverEveryParameter() throws Exception {
        List<Set<String>> shards = onRanks(3, "shards", (session, trainer) -> {
            session.trainUntil(STEPS, () -> false);
            Set<String> owned = new HashSet<>();
            for (Parameter p : session.model().parameters()) {
                if (trainer.optimizer().owns(p)) {
                    owned.add(p.name());
                } else {
                    assertThrows(IllegalArgumentException.class, () -> trainer.optimizer().moments(p));
                }
            }
            return owned;
        });
        Set<String> all = new HashSet<>();
        int total = 0;
        for (Set<String> s : shards) {
            assertTrue(!s.isEmpty(), "every rank owns part of the optimizer state");
            all.addAll(s);
            total += s.size();
        }
        assertEquals(all.size(), total, "no parameter is owned twice");
        assertEquals(2 + 2 * (4 + 8) + 2 + 2 * 7, total, "every parameter, adapters included, has one owner");
    }

    @Test
    void aGradAccumThatDoesNotSplitOverTheRanksIsRefusedNamingTheField() throws Exception {
        ExecutionFailure e = assertThrows(ExecutionFailure.class, () -> train("four", 4, STEPS));
        assertTrue(e.getMessage().contains("training.gradAccum"), e.getMessage());
    }

    private void train(String name, int ranks, int until) throws Exception {
        onRanks(ranks, name, (session, trainer) -> session.trainUntil(until, () -> false));
    }

    @FunctionalInterface
    private interface RankBody<T> {
        T run(TrainingSession session, Trainer trainer) throws Exception;
    }

    private static final class ExecutionFailure extends Exception {
        ExecutionFailure(Throwable cause) {
            super(cause.getMessage(), cause);
        }
    }

    private <T> List<T> onRanks(int ranks, String name, RankBody<T> body) throws Exception {
        Path runDir = dir.resolve(name);
        TcpCollective.Host host = TcpCollective.listen(ranks, Duration.ofSeconds(60));
        List<Future<T>> results = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            results.add(pool.submit(() -> {
                try (Collective c = rank == 0 ? host.awaitPeers()
                        : TcpCollective.join(host.uniqueId(), rank, ranks, Duration.ofSeconds(60));
                        Dataset dataset = Dataset.open(dir.resolve("dataset"));
                        TrainingSession session = TrainingSession.open(spec, dataset, new LocalCheckpointStore(runDir),
                                "rank-" + rank, QUIET, c)) {
                    return body.run(session, session.trainer());
                } catch (Exception e) {
                    if (rank == 0) {
                        host.close();
                    }
                    throw e;
                }
            }));
        }
        List<T> out = new ArrayList<>();
        for (Future<T> f : results) {
            try {
                out.add(f.get());
            } catch (java.util.concurrent.ExecutionException e) {
                throw new ExecutionFailure(e.getCause());
            }
        }
        return out;
    }

    private Checkpoint finalCheckpoint(String name) throws Exception {
        return new LocalCheckpointStore(dir.resolve(name)).load(STEPS).checkpoint();
    }

    private static final TrainingSession.Listener QUIET = new TrainingSession.Listener() {};

    private static String randomText(int n) {
        StringBuilder b = new StringBuilder();
        long stream = Philox.stream("test/dp-corpus");
        for (int i = 0; i < n; i++) {
            b.append("abcdefgh ".charAt((int) Philox.uniformLong(5, stream, i, 9)));
        }
        return b.toString();
    }
}
