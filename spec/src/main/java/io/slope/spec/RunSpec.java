package io.slope.spec;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.List;

/**
 * Everything that defines a training run, as its JSON has it (what a user writes and the API receives). Results depend
 * only on (spec, data), never on the machine. Null fields mean "use the default"; {@link RunSpecs#resolve} fills them
 * in and checks every rule, giving the {@link ResolvedSpec} that everything after it takes. docs/spec.md documents
 * every field.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record RunSpec(
        String name,
        Model model,
        Sparsity sparsity,
        Adapters adapters,
        Optimizer optimizer,
        Training training,
        Data data,
        Eval eval,
        Integer checkpointEvery,
        String backend,
        String precision,
        Integer threads) {

    // Copies with one part replaced, for overrides applied before resolution (slope train --steps, --seed,
    // --threads). Not JSON properties: Jackson serialises a record's components only.

    public RunSpec withTraining(Training newTraining) {
        return new RunSpec(name, model, sparsity, adapters, optimizer, newTraining, data, eval, checkpointEvery,
                backend, precision, threads);
    }

    public RunSpec withThreads(Integer newThreads) {
        return new RunSpec(name, model, sparsity, adapters, optimizer, training, data, eval, checkpointEvery, backend,
                precision, newThreads);
    }

    /** GPT-2 shape. {@code preset} supplies every field that is left null. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Model(String preset, Integer layers, Integer heads, Integer dModel, Integer seqLen) {}

    /** Which layers are N:M sparse and how their backward pass is pruned (docs/method.md). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Sparsity(String mode, Integer n, Integer m, Integer columnMaskRefresh, Boolean denseFirstQkv) {}

    /** Lazy low-rank adapters added at step floor(start · steps). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Adapters(Double start, Integer rank) {}

    /** AdamW (torch semantics) and the warmup-then-linear-decay schedule. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Optimizer(
            Double lr,
            Double beta1,
            Double beta2,
            Double eps,
            Double weightDecay,
            Double gradClip,
            Integer warmupSteps,
            Double minLrRatio) {}

    /** Optimizer steps, sequences per micro-batch, micro-batches per optimizer step, and the seed. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Training(Integer steps, Integer batchSize, Integer gradAccum, Long seed) {}

    /**
     * Corpus files or folders (relative paths resolve against the spec file's folder), tokenizer, and the held-out
     * split: either the files of {@code validation} or the last {@code valFraction} of the corpus, never both.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Data(List<String> corpus, List<String> validation, String tokenizer, Double valFraction) {}

    /** Validation every {@code every} steps over at most {@code maxWindows} windows (0 = all). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Eval(Integer every, Integer maxWindows) {}
}
