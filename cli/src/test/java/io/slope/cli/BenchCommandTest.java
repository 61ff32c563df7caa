package io.slope.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.slope.cuda.CudaBackendProvider;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class BenchCommandTest {
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
    void aStepBenchWithoutItsShapeNamesTheMissingOptions() {
        Result r = run("bench", "step", "SLOPE");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--layers") && r.err().contains("--d-model"), r.err());
    }
}
