package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a Python oracle script from engine/src/test/python. In CI (CI=true) a missing interpreter or package is a
 * failure, never a skip; elsewhere the test is skipped with the reason.
 */
public final class PythonOracle {
    private PythonOracle() {}

    public static Path script(String name) {
        return Path.of("src", "test", "python", name).toAbsolutePath();
    }

    /** Runs {@code python3 script args…}; returns stdout. */
    public static String run(String scriptName, String... args) throws IOException, InterruptedException {
        requireModules("numpy");
        List<String> cmd = new ArrayList<>(List.of(python(), script(scriptName).toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IllegalStateException(scriptName + " did not finish in 5 minutes");
        }
        String text = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), scriptName + " failed:\n" + text);
        return text;
    }

    /** Skips (outside CI) or fails (in CI) when python3 or one of the modules is missing. */
    public static void requireModules(String... modules) throws IOException, InterruptedException {
        String python = python();
        String problem = null;
        if (python == null) {
            problem = "python3 is not on PATH";
        } else {
            for (String m : modules) {
                Process p = new ProcessBuilder(python, "-c", "import " + m).redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor() != 0) {
                    problem = "python module '" + m + "' is missing (pip install " + m + ")";
                    break;
                }
            }
        }
        if (problem != null) {
            if ("true".equals(System.getenv("CI"))) {
                throw new AssertionError(problem + "; CI must provide it (./slope test installs it)");
            }
            assumeTrue(false, problem + "; skipped outside CI");
        }
    }

    private static String python() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path candidate = Path.of(dir, "python3");
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        return null;
    }
}
