package io.slope.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.slope.cuda.CudaBackendProvider;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptModel;
import io.slope.engine.run.LocalTrainingRun;
import io.slope.engine.run.TrainedModel;
import io.slope.engine.run.TrainingSession;
import io.slope.engine.sample.Sampler;
import io.slope.spec.RunSpecCodec;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** `slope sample` end to end on a small trained char-level run. */
class SampleCommandTest {
    private static final String PROMPT = "to be";
    private static final int TOKENS = 24;

    @TempDir
    static Path dir;
    static Path run;

    /** What one execution printed and returned. */
    private record Result(int exitCode, String out, String err) {}

    @BeforeAll
    static void train() throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "to be or not to be, that is the question.\n".repeat(60));
        run = dir.resolve("run");
        LocalTrainingRun.start(RunSpecCodec.parseResolved("""
                {"name": "tiny", "model": {"layers": 1, "heads": 2, "dModel": 16, "seqLen": 8},
                 "sparsity": {"mode": "slope"}, "optimizer": {"lr": 0.02, "warmupSteps": 1},
                 "training": {"steps": 20, "batchSize": 4, "seed": 3},
                 "data": {"corpus": ["corpus.txt"], "tokenizer": "char"}, "eval": {"every": 0, "maxWindows": 2},
                 "backend": "cpu", "threads": 1}
                """), dir, run, new TrainingSession.Listener() {});
    }

    @Test
    void greedyPrintsThePromptAndTheEnginesGreedyContinuation() throws Exception {
        Result result = sample("--checkpoint", run.toString(), "--prompt", PROMPT, "--max-tokens", "" + TOKENS);
        assertEquals(0, result.exitCode(), result.err());
        String expected;
        try (CpuBackend backend = new CpuBackend(1);
                TrainedModel trained = TrainedModel.load(run, backend)) {
            int[] ids = new Sampler(trained.model()).generate(trained.tokenizer().encode(PROMPT),
                    Sampler.Settings.greedy(TOKENS), t -> { });
            expected = PROMPT + trained.tokenizer().decode(ids) + System.lineSeparator();
        }
        assertEquals(expected, result.out());
        assertTrue(result.err().contains("(step 20, adapters as trained), greedy"), result.err());
        Result recomputed = sample("--checkpoint", run.toString(), "--prompt", PROMPT, "--max-tokens", "" + TOKENS,
                "--no-kv-cache");
        assertEquals(expected, recomputed.out(), "recomputing every window chooses what the KV cache does");
    }

    /**
     * --form inference serves SLoPe's inference form (A pruned 2:4, B scaled): the greedy continuation of the model
     * Merge.inferenceForm builds from the trained one.
     */
    @Test
    void theInferenceFormIsServedOnRequest() throws Exception {
        Result result = sample("--checkpoint", run.toString(), "--prompt", PROMPT, "--max-tokens", "" + TOKENS,
                "--form", "inference");
        assertEquals(0, result.exitCode(), result.err());
        String expected;
        try (CpuBackend backend = new CpuBackend(1);
                TrainedModel trained = TrainedModel.load(run, backend)) {
            GptModel model = trained.model();
            assertTrue(model.adapterRank() > 0, "the run ends in its adapter phase");
            try (GptModel inferenceForm = GptModel.restore(backend, model.config(), model.dtype(),
                    Merge.inferenceForm(model.config(), model.snapshot()), GptModel.Use.INFERENCE)) {
                int[] ids = new Sampler(inferenceForm).generate(trained.tokenizer().encode(PROMPT),
                        Sampler.Settings.greedy(TOKENS), t -> { });
                expected = PROMPT + trained.tokenizer().decode(ids) + System.lineSeparator();
            }
        }
        assertEquals(expected, result.out());
        assertTrue(result.err().contains("(step 20, the inference form), greedy"), result.err());
    }

    @Test
    void seededTopKIsReproducibleAndTheSeedMatters() {
        Path checkpoint = run.resolve("checkpoints").resolve("0000000020");
        String[] args = {"--checkpoint", checkpoint.toString(), "--prompt", PROMPT, "--top-k", "6", "--seed", "7",
                "--max-tokens", "" + TOKENS};
        Result first = sample(args);
        assertEquals(0, first.exitCode(), first.err());
        assertEquals(first.out(), sample(args).out());
        args[7] = "8";
        assertNotEquals(first.out(), sample(args).out());
        assertTrue(first.err().contains("top-6, temperature 1.0, seed 7"), first.err());
    }

    @Test
    void badInputIsRefusedWithAnErrorNamingTheFlag() {
        assertRefused("--prompt: must not be empty", "--checkpoint", run.toString(), "--prompt", "");
        assertRefused("--prompt: character U+20AC is not in this model's vocabulary", "--checkpoint", run.toString(),
                "--prompt", "to be €");
        assertRefused("--checkpoint: " + dir.resolve("missing"), "--checkpoint", dir.resolve("missing").toString(),
                "--prompt", PROMPT);
        assertRefused("--top-k must be at least 1", "--checkpoint", run.toString(), "--prompt", PROMPT, "--top-k",
                "0");
        assertRefused("--checkpoint", "--prompt", PROMPT);
        assertRefused("unknown --backend 'gpu'; allowed: [auto, cpu, cuda]", "--checkpoint", run.toString(),
                "--prompt", PROMPT, "--backend", "gpu");
        assertRefused("unknown --form 'merged'; allowed: [trained, inference]", "--checkpoint", run.toString(),
                "--prompt", PROMPT, "--form", "merged");
    }

    @Test
    void theCudaBackendWhereThereIsNoGpuIsRefusedSayingWhy() {
        assumeTrue(new CudaBackendProvider().unavailableReason().isPresent(), "a GPU is present");
        assertRefused("backend: \"cuda\" is not available (cuda: ", "--checkpoint", run.toString(), "--prompt",
                PROMPT, "--backend", "cuda");
    }

    @Test
    void helpStatesTheDefaults() {
        Result help = sample("--help");
        assertEquals(0, help.exitCode());
        String text = help.out().replaceAll("\\s+", " "); // unwrapped
        assertTrue(text.contains("--top-k=K Sample among the K most likely tokens; 1 = greedy (default: 1)"), text);
        assertTrue(text.contains("--max-tokens=N Tokens to generate (default: 200)"), text);
    }

    private static void assertRefused(String message, String... args) {
        Result result = sample(args);
        assertEquals(2, result.exitCode(), result.out());
        assertTrue(result.err().contains(message), "expected \"" + message + "\" in: " + result.err());
    }

    private static Result sample(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = new CommandLine(new SlopeCli());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        String[] full = new String[args.length + 1];
        full[0] = "sample";
        System.arraycopy(args, 0, full, 1, args.length);
        int code = cli.execute(full);
        return new Result(code, out.toString(), err.toString());
    }
}
