package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Results depend only on (spec, seed, data): K steps on one thread in a separate JVM under {@code -Xint} (no JIT at
 * all) equal, bit for bit, K steps on several threads under the JIT (ADR 002).
 */
class DeterminismTest {
    @Test
    void interpretedSingleThreadEqualsJitMultiThreadBitForBit() throws Exception {
        String interpreted = probeInSeparateJvm(List.of("-Xint"), 1);
        // Repeat in-process so the hot kernels are compiled by C2 by the last run.
        for (int run = 0; run < 4; run++) {
            for (int threads : new int[] {2, 3, 5}) {
                assertEquals(interpreted, DeterminismProbe.fingerprint(threads),
                        "JIT with " + threads + " threads, run " + run);
            }
        }
    }

    private static String probeInSeparateJvm(List<String> jvmFlags, int threads) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new java.util.ArrayList<>(List.of(java));
        cmd.addAll(jvmFlags);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), DeterminismProbe.class.getName(),
                Integer.toString(threads)));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("the -Xint probe did not finish in 10 minutes");
        }
        assertEquals(0, p.exitValue(), out);
        String[] lines = out.split("\n");
        return lines[lines.length - 1].trim();
    }
}
