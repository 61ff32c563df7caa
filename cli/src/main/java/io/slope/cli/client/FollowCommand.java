package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintStream;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/**
 * {@code slope follow ID}: a live progress bar (step, stage, loss, tokens/s, ETA) until the run ends; stage changes and
 * evaluations as lines. Exits 0 when the run SUCCEEDED, 1 otherwise; the last line is the run's JSON summary.
 */
@Command(name = "follow", mixinStandardHelpOptions = true, description = "Follow a run to its end.")
public final class FollowCommand implements Callable<Integer> {
    private static final int BAR_WIDTH = 30;
    private static final List<String> FINISHED = List.of("SUCCEEDED", "FAILED", "CANCELLED");

    @Mixin
    ClientOptions options;

    @Parameters(paramLabel = "ID", description = "the run's id")
    String id;

    @Override
    public Integer call() throws InterruptedException {
        return follow(options.client(), id);
    }

    static int follow(ApiClient api, String id) {
        PrintStream out = System.out;
        var console = System.console();
        boolean terminal = console != null && console.isTerminal();
        String stage = null;
        String status = null;
        // The detail holds the newest evaluations only, so those shown are remembered by step and name.
        Set<String> evalsShown = new HashSet<>();
        int lastStep = 0;
        double loss = Double.NaN;
        long lastLine = 0;
        while (true) {
            JsonNode run = api.get("/api/v1/runs/" + id);
            JsonNode samples = api.get("/api/v1/runs/" + id + "/metrics?afterStep=" + lastStep).get("samples");
            if (!samples.isEmpty()) {
                JsonNode last = samples.get(samples.size() - 1);
                lastStep = last.get("step").asInt();
                loss = last.get("loss").asDouble();
            }
            String newStage = run.path("stage").asText(null);
            String newStatus = run.get("status").asText();
            if (!java.util.Objects.equals(stage, newStage) || !newStatus.equals(status)) {
                if (terminal) {
                    out.println();
                }
                out.println("stage " + (newStage == null ? "-" : newStage) + ": " + newStatus);
                stage = newStage;
                status = newStatus;
            }
            for (JsonNode e : run.get("evals")) {
                if (!evalsShown.add(e.get("step").asInt() + " " + e.get("name").asText())) {
                    continue;
                }
                if (terminal) {
                    out.println();
                }
                out.printf("eval step %d  %s %.4f%n", e.get("step").asInt(), e.get("name").asText(),
                        e.get("value").asDouble());
            }
            int done = run.get("stepsDone").asInt();
            int total = run.get("totalSteps").asInt();
            String line = bar(done, total, newStage, loss, run.path("tokensPerSecond").asDouble(0),
                    run.hasNonNull("etaSeconds") ? run.get("etaSeconds").asLong() : -1);
            if (terminal) {
                out.print("\r" + line);
                out.flush();
            } else if (System.currentTimeMillis() - lastLine > 5000 || FINISHED.contains(newStatus)) {
                out.println(line);
                lastLine = System.currentTimeMillis();
            }
            if (FINISHED.contains(newStatus)) {
                if (terminal) {
                    out.println();
                }
                if (run.hasNonNull("error")) {
                    out.println("error: " + run.get("error").asText());
                }
                out.println(summary(run));
                return "SUCCEEDED".equals(newStatus) ? 0 : 1;
            }
            try {
                Thread.sleep(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return 130;
            }
        }
    }

    static String bar(int done, int total, String stage, double loss, double tokensPerSecond, long etaSeconds) {
        int filled = total == 0 ? 0 : (int) ((long) BAR_WIDTH * Math.min(done, total) / total);
        return String.format("[%s%s] %d/%d  %s  loss %s  %,.0f tok/s  ETA %s ", "#".repeat(filled),
                ".".repeat(BAR_WIDTH - filled), done, total, stage == null ? "-" : stage,
                Double.isNaN(loss) ? "-" : String.format("%.4f", loss), tokensPerSecond,
                etaSeconds < 0 ? "?" : etaSeconds >= 3600 ? String.format("%dh%02dm", etaSeconds / 3600,
                        etaSeconds / 60 % 60) : String.format("%dm%02ds", etaSeconds / 60, etaSeconds % 60));
    }

    /** One JSON line: id, status, steps, the final evaluations. */
    static String summary(JsonNode run) {
        var summary = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode();
        summary.put("id", run.get("id").asText());
        summary.put("name", run.get("name").asText());
        summary.put("status", run.get("status").asText());
        summary.put("stepsDone", run.get("stepsDone").asInt());
        var evals = summary.putObject("evals");
        for (JsonNode e : run.get("evals")) {
            evals.put(e.get("name").asText(), e.get("value").asDouble());
        }
        if (run.hasNonNull("error")) {
            summary.put("error", run.get("error").asText());
        }
        return summary.toString();
    }
}
