package io.slope.cli.client;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** {@code slope cancel ID}: the running chunk checkpoints and the run ends CANCELLED. */
@Command(name = "cancel", mixinStandardHelpOptions = true, description = "Cancel a run.")
public final class CancelCommand implements Callable<Integer> {
    @Mixin
    ClientOptions options;

    @Parameters(paramLabel = "ID", description = "the run's id")
    String id;

    @Override
    public Integer call() {
        var run = options.client().post("/api/v1/runs/" + id + "/cancel", null);
        System.out.println("cancellation requested for " + run.get("id").asText() + " (" + run.get("status").asText()
                + "); `slope follow " + id + "` shows when it has stopped");
        return 0;
    }
}
