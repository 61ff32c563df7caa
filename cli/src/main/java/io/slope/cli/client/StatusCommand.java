package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code slope status ID}: where a run is, in a few lines (or the API's whole answer with {@code --json}). */
@Command(name = "status", mixinStandardHelpOptions = true, description = "Show a run's status.")
public final class StatusCommand implements Callable<Integer> {
    @Mixin
    ClientOptions options;

    @Parameters(paramLabel = "ID", description = "the run's id")
    String id;

    @Option(names = "--json", description = "print the API's JSON answer")
    boolean json;

    @Override
    public Integer call() {
        ApiClient api = options.client();
        JsonNode run = api.get("/api/v1/runs/" + id);
        if (json) {
            System.out.println(run.toPrettyString());
            return 0;
        }
        System.out.printf("%s  %s  %s%n", run.get("id").asText(), run.get("name").asText(),
                run.get("status").asText());
        System.out.printf("stage %s  step %d/%d  tokens/s %s  ETA %s%n", run.path("stage").asText("-"),
                run.get("stepsDone").asInt(), run.get("totalSteps").asInt(),
                run.hasNonNull("tokensPerSecond") ? String.format("%,.0f", run.get("tokensPerSecond").asDouble()) : "-",
                run.hasNonNull("etaSeconds") ? run.get("etaSeconds").asLong() + " s" : "-");
        if (run.hasNonNull("options")) {
            System.out.printf("ranks %d  chunk steps %d  keep last %d checkpoints%n", run.at("/options/ranks").asInt(),
                    run.at("/options/chunkSteps").asInt(), run.at("/options/keepLastCheckpoints").asInt());
        }
        if (run.hasNonNull("gpuMemory")) {
            System.out.println(gpuMemoryLine(run));
        }
        if (run.hasNonNull("lastCheckpoint")) {
            System.out.println("last checkpoint: step " + run.at("/lastCheckpoint/step").asLong() + " at "
                    + run.at("/lastCheckpoint/key").asText());
        }
        for (JsonNode e : run.get("evals")) {
            System.out.printf("eval step %d  %s %.4f%n", e.get("step").asInt(), e.get("name").asText(),
                    e.get("value").asDouble());
        }
        if (run.hasNonNull("error")) {
            System.out.println("error: " + run.get("error").asText());
        }
        System.out.println("page: " + api.base() + run.at("/links/page").asText());
        if (run.hasNonNull("temporalUiUrl")) {
            System.out.println("workflow: " + run.get("temporalUiUrl").asText());
        }
        return 0;
    }

    /** A {@code cuda} run's estimated peak GPU memory against the service's GPUs, from its detail. */
    static String gpuMemoryLine(JsonNode run) {
        return String.format(Locale.ROOT, "GPU memory estimate %s, of the service's %.2f GiB per GPU",
                run.at("/gpuMemory/estimate").asText(), run.at("/gpuMemory/limitBytes").asLong() / (double) (1L << 30));
    }
}
