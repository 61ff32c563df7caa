package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code slope runs}: your runs, newest first. */
@Command(name = "runs", mixinStandardHelpOptions = true, description = "List runs, newest first.")
public final class RunsCommand implements Callable<Integer> {
    @Mixin
    ClientOptions options;

    @Option(names = "--status", description = "only runs with this status (QUEUED, RUNNING, PAUSED, SUCCEEDED, "
            + "FAILED, CANCELLED)")
    String status;

    @Option(names = "--limit", defaultValue = "20", description = "at most this many (default ${DEFAULT-VALUE})")
    int limit;

    @Override
    public Integer call() {
        ApiClient api = options.client();
        String query = "?limit=" + Math.min(limit, 100) + (status == null ? ""
                : "&status=" + URLEncoder.encode(status, StandardCharsets.UTF_8));
        JsonNode page = api.get("/api/v1/runs" + query);
        System.out.printf("%-36s  %-10s  %-12s  %11s  %s%n", "ID", "STATUS", "STAGE", "STEPS", "NAME");
        for (JsonNode run : page.get("items")) {
            System.out.printf("%-36s  %-10s  %-12s  %11s  %s%n", run.get("id").asText(), run.get("status").asText(),
                    run.path("stage").asText("-"), run.get("stepsDone").asInt() + "/" + run.get("totalSteps").asInt(),
                    run.get("name").asText());
        }
        return 0;
    }
}
