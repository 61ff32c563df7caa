package io.slope.cli;

import io.slope.engine.checkpoint.CorruptCheckpointException;
import io.slope.engine.checkpoint.UnsupportedCheckpointFormatException;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Backends;
import io.slope.engine.data.InvalidTokenShardException;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.run.TrainedModel;
import io.slope.engine.sample.Sampler;
import io.slope.spec.BackendChoice;
import io.slope.spec.WireName;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code slope sample}: continues a prompt with a trained checkpoint on the CPU backend (or the GPU, with
 * {@code --backend cuda}). The text goes to stdout as it is generated; what was loaded goes to stderr.
 */
@Command(name = "sample", mixinStandardHelpOptions = true,
        description = "Continue a prompt with a trained model (CPU, or --backend cuda). Greedy by default; --top-k K > 1 "
                + "samples among the K most likely tokens, reproducibly for a given --seed.")
final class SampleCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "A run folder (runs/NAME: its newest committed checkpoint) or a checkpoint folder inside one "
                    + "(runs/NAME/checkpoints/STEP). The tokenizer comes from the run's dataset/.")
    Path checkpoint;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT",
            description = "Text to continue. Longer than the model's context: only its last seqLen tokens are seen.")
    String prompt;

    @Option(names = "--max-tokens", paramLabel = "N", defaultValue = "200",
            description = "Tokens to generate (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "1",
            description = "Sample among the K most likely tokens; 1 = greedy (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--temperature", paramLabel = "T", defaultValue = "1.0",
            description = "Divides the logits before top-k sampling; lower is more conservative "
                    + "(default: ${DEFAULT-VALUE}; no effect when greedy).")
    double temperature;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "0",
            description = "Seed of the top-k draws (default: ${DEFAULT-VALUE}); the same seed gives the same text.")
    long seed;

    @Option(names = "--no-kv-cache",
            description = "Recompute the whole context for every token instead of caching each layer's keys and "
                    + "values (same tokens, much slower; for comparison).")
    boolean noKvCache;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0",
            description = "CPU threads (default: ${DEFAULT-VALUE} = all cores).")
    int threads;

    @Option(names = "--backend", paramLabel = "NAME", defaultValue = "cpu",
            description = "cpu, cuda (the GPU: KV-cache decoding there) or auto (default: ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--form", paramLabel = "FORM", defaultValue = "trained",
            description = "For a checkpoint with adapters: trained (the model as trained, its val_loss_adapters) or "
                    + "inference (SLoPe's inference form, A pruned 2:4: its val_loss_inference_form; each adapted layer "
                    + "one fused sparse forward on the GPU) (default: ${DEFAULT-VALUE}).")
    String form;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            Sampler.Settings settings = new Sampler.Settings(maxTokens, topK, temperature, seed);
            if (prompt.isEmpty()) {
                throw new IllegalArgumentException("--prompt: must not be empty; the model continues a text");
            }
            BackendChoice choice = WireName.parse(BackendChoice.class, backend, "--backend");
            TrainedModel.Form served = WireName.parse(TrainedModel.Form.class, form, "--form");
            try (Backend opened = Backends.open(choice, threads);
                    TrainedModel trained = TrainedModel.load(checkpoint, opened, served)) {
                int[] promptIds = encode(trained.tokenizer(), prompt);
                int seqLen = trained.model().config().seqLen();
                err.printf("%s (step %d, %s), %s%s%n", trained.checkpointDirectory(), trained.step(),
                        trained.model().adapterRank() == 0 ? "no adapters"
                                : trained.form() == TrainedModel.Form.INFERENCE ? "the inference form"
                                : "adapters as trained",
                        settings.topK() == 1 ? "greedy" : "top-" + settings.topK() + ", temperature "
                                + settings.temperature() + ", seed " + settings.seed(),
                        promptIds.length > seqLen ? "; prompt of " + promptIds.length + " tokens, the model sees "
                                + "the last " + seqLen : "");
                err.flush();
                out.print(prompt);
                out.flush();
                StreamingDecoder decoder = new StreamingDecoder(trained.tokenizer(), out);
                Sampler sampler = noKvCache ? new Sampler(trained.model(), Sampler.Decoding.RECOMPUTE)
                        : new Sampler(trained.model());
                sampler.generate(promptIds, settings, decoder::accept);
                decoder.finish();
            }
            return 0;
        } catch (IllegalArgumentException | CorruptCheckpointException | UnsupportedCheckpointFormatException
                | InvalidTokenShardException e) {
            // Bad input or a run folder that cannot be used: the message says which and why.
            err.println(e.getMessage());
            return 2;
        }
    }

    private static int[] encode(Tokenizer tokenizer, String text) {
        try {
            return tokenizer.encode(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--prompt: " + e.getMessage());
        }
    }

    /**
     * Prints generated text as it comes. A GPT-2 token can end inside a multi-byte character, which decodes to U+FFFD
     * until the next token completes it, so text is printed only up to a complete character.
     */
    private static final class StreamingDecoder {
        private final Tokenizer tokenizer;
        private final PrintWriter out;
        private final List<Integer> ids = new ArrayList<>();
        private String printed = "";

        StreamingDecoder(Tokenizer tokenizer, PrintWriter out) {
            this.tokenizer = tokenizer;
            this.out = out;
        }

        void accept(int id) {
            ids.add(id);
            String text = decoded();
            if (!text.endsWith("\uFFFD") && text.startsWith(printed)) {
                out.print(text.substring(printed.length()));
                out.flush();
                printed = text;
            }
        }

        void finish() {
            String text = decoded();
            out.println(text.startsWith(printed) ? text.substring(printed.length()) : text);
            out.flush();
        }

        private String decoded() {
            return tokenizer.decode(ids.stream().mapToInt(Integer::intValue).toArray());
        }
    }
}
