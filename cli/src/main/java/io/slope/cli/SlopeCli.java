package io.slope.cli;

import io.slope.api.TokenCommand;
import io.slope.cli.client.ApiClient;
import io.slope.cli.client.CancelCommand;
import io.slope.cli.client.DownloadCommand;
import io.slope.cli.client.FollowCommand;
import io.slope.cli.client.RunsCommand;
import io.slope.cli.client.StatusCommand;
import io.slope.cli.client.SubmitCommand;
import io.slope.cli.train.RankCommand;
import io.slope.cli.train.TrainCommand;
import java.io.UncheckedIOException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code slope} command. */
@Command(name = "slope", mixinStandardHelpOptions = true, version = "slope 0.1.0",
        description = "Sparse GPT pretraining with SLoPe (2:4 weights, double-pruned backward, lazy low-rank adapters).",
        subcommands = {TrainCommand.class, RankCommand.class, SampleCommand.class, BenchCommand.class, UpCommand.class,
            SubmitCommand.class, StatusCommand.class, FollowCommand.class, CancelCommand.class, RunsCommand.class,
            DownloadCommand.class, TokenCommand.class, CommandLine.HelpCommand.class})
public final class SlopeCli {
    public static void main(String[] args) {
        int code = commandLine().execute(args);
        System.exit(code);
    }

    /** The command line, with the API's refusals and unreachable services reported as messages, not stack traces. */
    public static CommandLine commandLine() {
        return new CommandLine(new SlopeCli()).setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof ApiClient.ApiException || e instanceof UncheckedIOException
                    || e instanceof IllegalArgumentException) {
                cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + e.getMessage());
                return 2;
            }
            throw e;
        });
    }
}
