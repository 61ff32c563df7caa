package io.slope.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.slope.cuda.CudaBackendProvider;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class BenchCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path out;

    private record Result(int code, String err) {}

    private static Result run(String... args) {
        StringWriter err = new StringWriter();
        CommandLine cli = SlopeCli.commandLine();
        cli.setErr(new PrintWriter(err));
        return new Result(cli.execute(args), err.toString());
    }

    @Test
    void withoutAGpuSaysWhyAndWritesNoResults() throws Exception {
        assumeTrue(new CudaBackendProvider().unavailableReason().isPresent(), "a GPU is present");
        Result r = run("bench", "scaling", "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("slope bench scaling: the cuda backend is not available here"), r.err());
        try (var files = Files.list(out)) {
            assertFalse(files.findAny().isPresent());
        }
    }

    @Test
    void aCustomStepBenchWithoutItsShapeNamesTheMissingOptions() {
        Result r = run("bench", "step", "--model", "custom", "--heads", "2", "slope");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--layers") && r.err().contains("--d-model"), r.err());
    }

    @Test
    void aCpuStepBenchAppendsOneJsonLinePerModeOfTheProductionStep() throws Exception {
        Path results = out.resolve("step-test.jsonl");
        Files.writeString(results, "{\"system\": \"pytorch\"}\n");
        Result r = run("bench", "step", "--backend", "cpu", "--threads", "1", "--model", "custom", "--layers", "2",
                "--heads", "2", "--d-model", "32", "--seq-len", "16", "--vocab", "64", "--batch", "2", "--warmup", "1",
                "--steps", "1", "--commit", "abc123", "--results", results.toString(), "dense", "slope:100");
        assertEquals(0, r.code(), r.err());
        List<String> lines = Files.readAllLines(results);
        assertEquals(3, lines.size(), String.join("\n", lines));
        assertEquals("pytorch", JSON.readTree(lines.get(0)).get("system").asText(), "an earlier line is kept");
        JsonNode dense = JSON.readTree(lines.get(1));
        JsonNode slope = JSON.readTree(lines.get(2));
        for (JsonNode line : List.of(dense, slope)) {
            assertEquals("slope", line.get("system").asText());
            assertEquals("custom", line.get("model").asText());
            assertEquals("b", line.get("protocol").asText());
            assertEquals("abc123", line.get("commit").asText());
            assertTrue(line.get("device").asText().startsWith("cpu("), line.toString());
            assertTrue(line.get("utc").asText().endsWith("Z"), line.toString());
            assertTrue(line.has("peak_gb"), line.toString());
            assertEquals(1, line.get("accum").asInt());
            double stepMs = line.get("step_ms_median").asDouble();
            assertTrue(stepMs > 0 && Double.isFinite(line.get("loss").asDouble()), line.toString());
            double tokensPerS = 2 * 16 / (stepMs / 1e3); // one micro-batch of 2 × 16 per step
            assertEquals(tokensPerS, line.get("tokens_per_s").asDouble(), 0.5 + tokensPerS * 1e-3, line.toString());
            double flopPerToken = 6.0 * line.get("params").asLong() + 12.0 * 2 * 16 * 32;
            assertEquals(tokensPerS * flopPerToken / 989e12, line.get("mfu").asDouble(),
                    tokensPerS * flopPerToken / 989e12 * 1e-3, "dense-equivalent MFU");
        }
        assertEquals("dense", dense.get("mode").asText());
        assertTrue(dense.get("refresh").isNull(), "dense has no column mask");
        assertEquals("slope", slope.get("mode").asText());
        assertEquals(100, slope.get("refresh").asInt());
        assertEquals(dense.get("params").asLong(), slope.get("params").asLong(), "N is the dense count in every mode");
    }

    @Test
    void aCpuInferBenchWritesPrefillAndDecodeLinesPerModeOfTheProductionModel() throws Exception {
        Path results = out.resolve("infer-test.jsonl");
        Result r = run("bench", "infer", "--backend", "cpu", "--threads", "1", "--model", "custom", "--layers", "2",
                "--heads", "2", "--d-model", "32", "--seq-len", "16", "--vocab", "64", "--prefill-batch", "2",
                "--decode-batch", "1,3", "--prompt", "4", "--tokens", "5", "--warmup", "1", "--repeats", "2",
                "--commit", "abc123", "--results", results.toString(), "dense", "slope");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> lines = Files.readAllLines(results).stream().map(BenchCommandTest::json).toList();
        assertEquals(6, lines.size(), lines.toString());
        for (int i = 0; i < 6; i++) {
            JsonNode line = lines.get(i);
            assertEquals(i < 3 ? "dense" : "slope", line.get("mode").asText(), line.toString());
            assertEquals(List.of("prefill", "decode", "decode").get(i % 3), line.get("phase").asText());
            assertEquals(List.of(2, 1, 3).get(i % 3), line.get("batch").asInt(), line.toString());
            assertEquals(i < 3 ? 0 : 4, line.get("adapter_rank").asInt(), "the default rank at d 32: at least 4");
            double ms = line.get("ms_median").asDouble();
            int tokens = line.get("phase").asText().equals("prefill") ? 2 * 16 : line.get("batch").asInt();
            assertEquals(tokens / (ms / 1e3), line.get("tokens_per_s").asDouble(), 0.5 + tokens / ms, line.toString());
            assertEquals("abc123", line.get("commit").asText());
        }
    }

    @Test
    void anInferBenchRefusesAPromptAndTokensBeyondTheContextNamingTheOptions() {
        Result r = run("bench", "infer", "--backend", "cpu", "--model", "custom", "--layers", "1", "--heads", "1",
                "--d-model", "32", "--seq-len", "16", "--prompt", "10", "--tokens", "8", "dense");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--prompt 10") && r.err().contains("--tokens 8"), r.err());
    }

    private static JsonNode json(String line) {
        try {
            return JSON.readTree(line);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
