package io.slope.engine;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Runs an independent Python implementation from engine/src/test/python/ and returns what it printed. When python3 or
 * one of its packages is missing, the test fails under CI (CI=true), where the oracle must run, and is skipped with
 * the reason everywhere else.
 */
public final class PythonOracle {
    /** The scripts' exit code for "a needed package is not installed". */
    private static final int MISSING_PACKAGE = 3;
    private static final Path SCRIPTS = Path.of("src", "test", "python");

    private PythonOracle() {}

    public static String run(String script, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("python3", SCRIPTS.resolve(script).toString()));
        command.addAll(List.of(args));
        // stderr goes to a file so that neither pipe can fill up and block the script
        Path errors = Files.createTempFile("python-oracle", ".stderr");
        try {
            Process process;
            try {
                process = new ProcessBuilder(command).redirectError(errors.toFile()).start();
            } catch (IOException e) {
                unavailable("python3 cannot be started (" + e.getMessage() + ")");
                throw e;
            }
            process.getOutputStream().close();
            String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                fail(script + " did not finish within 60 s");
            }
            check(script, process.exitValue(), Files.readString(errors));
            return out;
        } finally {
            Files.deleteIfExists(errors);
        }
    }

    private static void check(String script, int exitCode, String err) {
        if (exitCode == MISSING_PACKAGE || err.contains("ModuleNotFoundError")) {
            unavailable(err.strip());
        }
        if (exitCode != 0) {
            fail(script + " exited with " + exitCode + ":\n" + err);
        }
    }

    private static void unavailable(String why) {
        String message = "Python oracle unavailable: " + why + ". Install: pip install -r " + SCRIPTS
                .resolve("requirements.txt");
        if ("true".equals(System.getenv("CI"))) {
            fail(message + " (CI=true: the oracle must run in CI)");
        }
        Assumptions.abort(message);
    }
}
