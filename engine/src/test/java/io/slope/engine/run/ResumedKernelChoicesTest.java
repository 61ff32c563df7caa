package io.slope.engine.run;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.slope.engine.backend.ChoosingBackend;
import io.slope.engine.backend.KernelChoices;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizers;
import io.slope.engine.parallel.Collective;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14 through a whole session: a run trained on a backend that searches its kernels resumes on another with the
 * recorded choices when both are the same GPU and libraries, and otherwise logs once that it searches anew.
 */
class ResumedKernelChoicesTest {
    private static final String H100 = "NVIDIA H100 80GB HBM3";

    @TempDir
    Path dir;
    private ResolvedSpec spec;
    private Dataset dataset;

    @BeforeEach
    void dataset() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "the quick brown fox jumps over the lazy dog.\n".repeat(300));
        spec = RunSpecCodec.parseResolved("""
                {"name": "choices", "model": {"layers": 1, "heads": 2, "dModel": 32, "seqLen": 16},
                 "sparsity": {"mode": "slope"}, "training": {"steps": 4, "batchSize": 2, "gradAccum": 1, "seed": 3},
                 "data": {"corpus": ["corpus.txt"]}, "eval": {"every": 0, "maxWindows": 2},
                 "checkpointEvery": 0, "backend": "cpu", "threads": 1}
                """);
        Corpus corpus = Corpus.read(List.of(dir.resolve("corpus.txt")));
        dataset = Dataset.prepare(corpus, Tokenizers.forCorpus("char", corpus), 0.1,
                Dataset.DEFAULT_TOKENS_PER_SHARD, dir.resolve("dataset"));
        ChoosingBackend first = new ChoosingBackend(ChoosingBackend.madeOn(H100));
        List<String> log = new ArrayList<>();
        try (TrainingSession session = open(first, log)) {
            session.trainUntil(2, () -> false);
        }
    }

    @AfterEach
    void closeDataset() {
        dataset.close();
    }

    @Test
    void aResumeOnTheSameGpuReusesTheRecordedChoicesSilently() throws Exception {
        ChoosingBackend resuming = new ChoosingBackend(ChoosingBackend.madeOn(H100));
        List<String> log = new ArrayList<>();

        try (TrainingSession session = open(resuming, log)) {
            assertEquals(2, session.stepsDone());
        }

        assertEquals(List.of(ChoosingBackend.madeOn(H100)), resuming.reused());
        assertEquals(List.of(), searchedAnew(log));
    }

    @Test
    void aResumeOnAnotherGpuSearchesAnewAndSaysSoOnce() throws Exception {
        ChoosingBackend resuming = new ChoosingBackend(ChoosingBackend.madeOn("NVIDIA H200"));
        List<String> log = new ArrayList<>();

        try (TrainingSession session = open(resuming, log)) {
            session.trainUntil(4, () -> false);
        }

        assertEquals(List.<KernelChoices>of(), resuming.reused());
        assertEquals(1, searchedAnew(log).size(), String.join("\n", log));
    }

    private TrainingSession open(ChoosingBackend backend, List<String> log) throws Exception {
        TrainingSession.Listener listener = new TrainingSession.Listener() {
            @Override
            public void onInfo(String line) {
                log.add(line);
            }
        };
        return TrainingSession.open(spec, dataset, new LocalCheckpointStore(dir.resolve("run")), "test", listener,
                backend.backend(), Collective.single());
    }

    private static List<String> searchedAnew(List<String> log) {
        return log.stream().filter(line -> line.contains("anew")).toList();
    }
}
