package io.slope.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code slope} command. */
@Command(name = "slope", mixinStandardHelpOptions = true, version = "slope 0.1.0",
        description = "Sparse GPT pretraining with SLoPe (2:4 weights, double-pruned backward, lazy low-rank adapters).",
        subcommands = {TrainCommand.class, SampleCommand.class, CommandLine.HelpCommand.class})
public final class SlopeCli {
    public static void main(String[] args) {
        int code = new CommandLine(new SlopeCli()).execute(args);
        System.exit(code);
    }
}
