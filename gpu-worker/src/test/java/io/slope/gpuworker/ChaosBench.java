package io.slope.gpuworker;

import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.localservices.ManagedProcess;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.testinfra.TestServices;
import io.slope.workflows.run.RunOptions;
import io.slope.workflows.run.RunOutcome;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.UUID;

/**
 * The fault matrix as a benchmark, not a test (bench/chaos runs it): for each fault (SIGKILL of the GPU worker,
 * SIGKILL and restart of the Temporal dev server, crash and restart of Postgres, SIGKILL and restart of the S3 server)
 * N runs of a tiny spec with the fault injected at a random step. Records whether each run succeeded with final weights
 * bit-identical to an uninterrupted run, the seconds from the fault until a new step was recorded, and the run's wall
 * time; writes bench/results/chaos-DATE.md and .jsonl.
 *
 * <p>Usage: ChaosBench [N per fault, default 3] [seed, default 1] [results folder, default ../bench/results]
 */
public final class ChaosBench {
    private record Outcome(String fault, int iteration, int injectedAfterStep, boolean succeeded,
            boolean bitIdentical, double secondsToTrainingAgain, double runSeconds, String error) {}

    private static String baseline = "";

    private ChaosBench() {}

    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        long seed = args.length > 1 ? Long.parseLong(args[1]) : 1;
        Path results = Path.of(args.length > 2 ? args[2] : "../bench/results");
        Random random = new Random(seed);
        int steps = 40;
        List<Outcome> outcomes = new ArrayList<>();
        try (PipelineHarness harness = new PipelineHarness("chaos")) {
            ManagedProcess[] worker = {harness.startGpuWorker()};
            ResolvedSpec spec =
                    PipelineHarness.tinySpec(PipelineHarness.corpus(Files.createTempDirectory("chaos")), steps);
            // Baseline: the same spec through the pipeline with no fault, and in one JVM with the engine alone.
            long t0 = System.nanoTime();
            UUID clean = harness.submit(spec, new RunOptions(8, 5, 2, 0));
            RunOutcome cleanOutcome = harness.result(clean, RunOutcome.class, Duration.ofMinutes(8));
            double pipelineSeconds = (System.nanoTime() - t0) / 1e9;
            long t1 = System.nanoTime();
            LoadedCheckpoint reference = harness.uninterrupted(spec, cleanOutcome.results().get(Stage.PREPARE_DATA)
                    .datasetId());
            double engineSeconds = (System.nanoTime() - t1) / 1e9;
            baseline = String.format(Locale.ROOT, "Baseline without faults: %.1f s through the pipeline (all seven "
                    + "stages, chunks of 8 steps, checkpoints every 5 to S3 and Postgres), %.1f s for the engine alone "
                    + "training the same spec in one JVM with local checkpoints (no merge/eval/export).%n%n",
                    pipelineSeconds, engineSeconds);
            for (String fault : List.of("gpu-worker SIGKILL", "temporal restart", "postgres restart", "s3 restart")) {
                for (int i = 1; i <= n; i++) {
                    int at = 3 + random.nextInt(steps - 8);
                    long start = System.nanoTime();
                    UUID id = harness.submit(spec, new RunOptions(8, 5, 2, 0));
                    String error = null;
                    boolean ok = false;
                    boolean identical = false;
                    double recovery = Double.NaN;
                    try {
                        PipelineHarness.await("step " + at, Duration.ofMinutes(4),
                                () -> stepsDone(harness, id) >= at);
                        int before = stepsDone(harness, id);
                        long faultAt = System.nanoTime();
                        inject(fault, harness, worker);
                        PipelineHarness.await("training again", Duration.ofMinutes(4),
                                () -> stepsDone(harness, id) > before || finished(harness, id));
                        recovery = (System.nanoTime() - faultAt) / 1e9;
                        RunOutcome outcome = harness.result(id, RunOutcome.class, Duration.ofMinutes(8));
                        ok = outcome.status().equals("SUCCEEDED");
                        identical = reference.checkpoint().tensors().equals(harness.finalCheckpoint(id, steps)
                                .checkpoint().tensors());
                    } catch (Exception | AssertionError e) {
                        error = e.toString();
                    }
                    Outcome o = new Outcome(fault, i, at, ok, identical, recovery,
                            (System.nanoTime() - start) / 1e9, error);
                    System.out.println(o);
                    outcomes.add(o);
                }
            }
        }
        write(results, outcomes, n, seed);
        System.exit(outcomes.stream().allMatch(o -> o.succeeded() && o.bitIdentical()) ? 0 : 1);
    }

    private static void inject(String fault, PipelineHarness harness, ManagedProcess[] worker) throws Exception {
        TestServices services = TestServices.get();
        switch (fault) {
            case "gpu-worker SIGKILL" -> {
                worker[0].kill();
                worker[0] = harness.startGpuWorker();
            }
            case "temporal restart" -> {
                services.temporal().killAndRestart();
            }
            case "postgres restart" -> {
                services.postgres().crash();
                services.postgres().start();
            }
            case "s3 restart" -> {
                services.s3().kill();
                services.s3().start();
            }
            default -> throw new IllegalArgumentException(fault);
        }
    }

    private static int stepsDone(PipelineHarness harness, UUID id) {
        try {
            return harness.catalogue.run(id).orElseThrow().stepsDone();
        } catch (Exception e) {
            return -1;
        }
    }

    private static boolean finished(PipelineHarness harness, UUID id) {
        try {
            return !List.of("QUEUED", "RUNNING", "PAUSED").contains(harness.catalogue.run(id).orElseThrow().status()
                    .name());
        } catch (Exception e) {
            return false;
        }
    }

    private static void write(Path dir, List<Outcome> outcomes, int n, long seed) throws Exception {
        Files.createDirectories(dir);
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmm"));
        StringBuilder md = new StringBuilder("# Chaos matrix " + stamp + "\n\n" + n + " runs per fault, seed " + seed
                + ", tiny spec (2 layers, d=64, seqLen 32, 40 steps, chunks of 8), CPU backend, "
                + Runtime.getRuntime().availableProcessors() + " cores. Fault injected once the run had recorded the "
                + "given step; \"training again\" is the time until a later step was recorded (progress is written in "
                + "batches of up to 2 s).\n\n" + baseline + "| fault | run | after step | succeeded | bit-identical | s to training "
                + "again | run s | error |\n|---|---|---|---|---|---|---|---|\n");
        StringBuilder jsonl = new StringBuilder();
        for (Outcome o : outcomes) {
            md.append(String.format(Locale.ROOT, "| %s | %d | %d | %s | %s | %.1f | %.1f | %s |%n", o.fault(),
                    o.iteration(), o.injectedAfterStep(), o.succeeded(), o.bitIdentical(), o.secondsToTrainingAgain(),
                    o.runSeconds(), o.error() == null ? "" : o.error().replace('|', '/')));
            jsonl.append(String.format(Locale.ROOT, "{\"fault\":\"%s\",\"run\":%d,\"afterStep\":%d,\"succeeded\":%s,"
                    + "\"bitIdentical\":%s,\"secondsToTrainingAgain\":%.3f,\"runSeconds\":%.3f}%n", o.fault(),
                    o.iteration(), o.injectedAfterStep(), o.succeeded(), o.bitIdentical(), o.secondsToTrainingAgain(),
                    o.runSeconds()));
        }
        Files.writeString(dir.resolve("chaos-" + stamp + ".md"), md);
        Files.writeString(dir.resolve("chaos-" + stamp + ".jsonl"), jsonl);
        System.out.println("wrote " + dir.resolve("chaos-" + stamp + ".md"));
    }
}
