package io.slope.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.testinfra.TestServices;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The browser tests of {@code e2e/run-page.test.mjs} (Debian's headless Chromium through playwright-core) against
 * this JVM's API, workers and the Temporal dev server's UI. Screenshots go to
 * {@code service-tests/target/screenshots/}, so a test run leaves the working tree as it was; the documentation's
 * ({@code docs/screenshots/}, tracked) are refreshed only when asked for, with
 * {@code -Dslope.refreshScreenshots=true}:
 *
 * <pre>
 * ./slope test -pl service-tests -am -Dtest=BrowserTest -Dsurefire.failIfNoSpecifiedTests=false \
 *     -Dslope.refreshScreenshots=true
 * </pre>
 */
class BrowserTest {
    /** Set to {@code true} to write the screenshots to {@code docs/screenshots/} instead of {@code target/}. */
    static final String REFRESH_PROPERTY = "slope.refreshScreenshots";

    @Test
    @Timeout(value = 9, unit = TimeUnit.MINUTES)
    void runPageAndTemporalUi() throws Exception {
        Path root = Path.of("..").toAbsolutePath().normalize();
        Path e2e = root.resolve("e2e");
        assertTrue(Files.isDirectory(e2e.resolve("node_modules/playwright-core")), "playwright-core is not "
                + "installed: `npm ci --prefix e2e` (./slope test and .ci/run do it)");
        String chromium = System.getenv().getOrDefault("CHROMIUM", "/usr/bin/chromium");
        assertTrue(Files.isExecutable(Path.of(chromium)), "no Chromium at " + chromium
                + ": `apt-get install chromium` (./slope test and .ci/run do it), or set CHROMIUM");
        Path screenshots = Boolean.getBoolean(REFRESH_PROPERTY) ? root.resolve("docs/screenshots")
                : Path.of("target", "screenshots").toAbsolutePath();
        ApiHarness api = ServiceHarness.get();
        Path corpus = TestServices.get().scratch("browser").resolve("corpus.txt");
        Files.writeString(corpus, ApiHarness.corpusText());
        ProcessBuilder node = new ProcessBuilder("node", "--test", "--test-reporter=spec", "run-page.test.mjs")
                .directory(e2e.toFile()).redirectErrorStream(true);
        node.environment().put("SLOPE_API", api.base);
        node.environment().put("SLOPE_TOKEN", api.aliceToken);
        node.environment().put("SLOPE_TEMPORAL_UI", "http://127.0.0.1:" + api.temporalUiPort);
        node.environment().put("SLOPE_CORPUS_FILE", corpus.toString());
        node.environment().put("SLOPE_SCREENSHOTS", screenshots.toString());
        node.environment().put("CHROMIUM", chromium);
        Process process = node.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        System.out.println(output);
        assertTrue(process.waitFor(8, TimeUnit.MINUTES));
        assertEquals(0, process.exitValue(), output);
        for (String shot : new String[] {"run-page-training.png", "run-page-succeeded.png", "temporal-ui-search.png"}) {
            assertTrue(Files.size(screenshots.resolve(shot)) > 10_000, shot);
        }
    }
}
