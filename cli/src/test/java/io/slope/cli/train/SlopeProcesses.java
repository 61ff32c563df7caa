package io.slope.cli.train;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.cli.SlopeCli;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.rng.Philox;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Real {@code slope} processes for the CLI's end-to-end tests: this Java, this class path, a 1 GiB heap, output to
 * files; and what they leave in a run folder (metrics.jsonl, checkpoints, the JSON summary).
 */
final class SlopeProcesses {
    private SlopeProcesses() {}

    /** What one `slope` process printed and returned. */
    record Result(int exitCode, String out, String err) {}

    /** A `slope` process and the files its stdout and stderr go to. */
    record Slope(Process process, Path out, Path err) {
        Result result() throws IOException {
            return new Result(process.exitValue(), Files.readString(out), Files.readString(err));
        }

        /** Its result once it has exited, within {@code bound} of {@code what} (a signal); its stderr is printed. */
        Result exitAfter(String what, java.time.Duration bound) throws Exception {
            long start = System.nanoTime();
            assertTrue(process.waitFor(bound.toSeconds(), TimeUnit.SECONDS), "slope outlived " + what);
            Result result = result();
            System.out.printf("exited %.2f s after %s:%n%s", (System.nanoTime() - start) / 1e9, what, result.err());
            return result;
        }

        /** What it has written to stderr so far. */
        String errSoFar() throws IOException {
            return Files.readString(err);
        }
    }

    /** A char-level corpus of 20,000 characters from {@code stream}, as {@code dir/corpus.txt}. */
    static void writeCorpus(Path dir, String stream) throws IOException {
        StringBuilder text = new StringBuilder();
        long key = Philox.stream(stream);
        for (int i = 0; i < 20_000; i++) {
            text.append("abcdefgh \n".charAt((int) Philox.uniformLong(5, key, i, 10)));
        }
        Files.writeString(dir.resolve("corpus.txt"), text);
    }

    /** `slope ARGS` in {@code dir}, waited for (at most 120 s). */
    static Result slope(Path dir, String... args) throws Exception {
        Slope slope = start(dir, args);
        assertTrue(slope.process().waitFor(120, TimeUnit.SECONDS), "slope " + String.join(" ", args)
                + " took over 120 s");
        return slope.result();
    }

    /** `slope ARGS` as ./slope runs it, in {@code dir}: this Java, this class path, its own 1 GiB heap. */
    static Slope start(Path dir, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx1g", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), SlopeCli.class.getName()));
        command.addAll(List.of(args));
        Path logs = Files.createTempDirectory(dir, "slope-");
        Path out = logs.resolve("out");
        Path err = logs.resolve("err");
        Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectOutput(out.toFile())
                .redirectError(err.toFile()).start();
        return new Slope(p, out, err);
    }

    /** Sends {@code signal} ("INT", "TERM") to {@code processes} in one `kill -SIGNAL` (a terminal's Ctrl-C: all). */
    static void kill(String signal, ProcessHandle... processes) throws Exception {
        List<String> command = new ArrayList<>(List.of("kill", "-" + signal));
        for (ProcessHandle p : processes) {
            command.add("" + p.pid());
        }
        Process kill = new ProcessBuilder(command).inheritIO().start();
        assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + signal + " failed");
    }

    /** The newest committed checkpoint's step; -1 when none. */
    static long committed(Path runDir) throws IOException {
        List<Long> steps = new LocalCheckpointStore(runDir).committedSteps();
        return steps.isEmpty() ? -1 : steps.getLast();
    }

    static Checkpoint checkpoint(Path runDir, long step) throws IOException {
        return new LocalCheckpointStore(runDir).load(step).checkpoint();
    }

    /** The loss of every step from metrics.jsonl, the last line of a step counting (a resumed run repeats steps). */
    static double[] losses(Path runDir) throws IOException {
        Path file = runDir.resolve(MetricsLog.FILE);
        if (!Files.exists(file)) {
            return new double[0];
        }
        List<Double> byStep = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(file)) {
            if (!line.endsWith("}")) {
                continue; // a line still being written
            }
            JsonNode n = json.readTree(line);
            int step = n.get("step").asInt();
            while (byStep.size() <= step) {
                byStep.add(Double.NaN);
            }
            byStep.set(step, n.get("loss").asDouble());
        }
        return byStep.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** The JSON summary: the last line of stdout. */
    static JsonNode summary(Result r) throws IOException {
        String[] lines = r.out().strip().split("\n");
        return new ObjectMapper().readTree(lines[lines.length - 1]);
    }
}
