package io.slope.engine.run;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.data.CharTokenizer;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.train.Evaluator;
import io.slope.engine.train.InMemoryBatches;
import io.slope.engine.train.Trainer;
import io.slope.spec.InvalidSpecException;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

/**
 * A whole training run in this process, without services: corpus → tokens → held-out split → model → steps with
 * periodic evaluation. What `slope train` runs.
 */
public final class LocalTrainingRun {
    /** Progress callbacks, on the training thread. */
    public interface Listener {
        void onStart(String description);

        void onStep(Trainer.StepStats stats, int totalSteps);

        void onEval(int step, double valLoss);
    }

    /** The outcome; {@code tokensPerSecond} counts training tokens over training time (evaluation excluded). */
    public record Summary(String name, String mode, int steps, long trainTokens, double trainLoss, double valLoss,
            double tokensPerSecond, double seconds, String backend) {}

    private LocalTrainingRun() {}

    /** @param baseDir folder that relative corpus paths resolve against (the spec file's folder) */
    public static Summary run(RunSpec spec, Path baseDir, Listener listener) throws IOException {
        String text = readCorpus(spec.data().corpus(), baseDir);
        CharTokenizer tokenizer = CharTokenizer.fromText(text);
        int[] tokens = tokenizer.encode(text);
        int valCount = (int) Math.floor(tokens.length * spec.data().valFraction());
        int[] train = Arrays.copyOfRange(tokens, 0, tokens.length - valCount);
        int[] heldOut = Arrays.copyOfRange(tokens, tokens.length - valCount, tokens.length);

        // Refuse before allocating when the CPU training state cannot fit in this JVM's heap.
        RunSpecs.validateForCpu(spec, tokenizer.vocabSize(), Runtime.getRuntime().maxMemory())
                .ifPresent(error -> {
                    throw new InvalidSpecException(List.of(error));
                });
        try (Backend backend = backend(spec)) {
            GptConfig config = GptConfig.of(spec, tokenizer.vocabSize());
            DType dtype = spec.precision().equals("fp64") ? DType.F64 : DType.F32;
            GptModel model = GptModel.fromDenseWeights(backend, config, dtype,
                    GptModel.initialWeights(config, spec.training().seed()));
            int steps = spec.training().steps();
            int evalBatch = spec.training().batchSize();
            // Fail before training, not after it, when the held-out split cannot hold one window.
            if (Evaluator.windowCount(heldOut.length, config.seqLen(), 0) == 0) {
                throw new IllegalArgumentException("data.valFraction: the held-out split has " + heldOut.length
                        + " tokens, fewer than one window of model.seqLen+1 = " + (config.seqLen() + 1)
                        + "; raise data.valFraction or use a larger corpus");
            }
            listener.onStart(String.format("%s: %d-layer d=%d GPT-2, %,d parameters, vocab %d (char), mode %s, "
                    + "%s, %s; %,d train / %,d held-out tokens", spec.name(), config.layers(), config.dModel(),
                    config.parameterCount(), config.vocab(), config.mode().wireName(), spec.precision(),
                    backend.name(), train.length, heldOut.length));
            Trainer trainer = new Trainer(model, spec,
                    new InMemoryBatches(train, config.seqLen(), spec.training().batchSize(),
                            spec.training().gradAccum(), spec.training().seed()));
            long start = System.nanoTime();
            double trainSeconds = 0;
            long trainTokens = 0;
            double lastLoss = Double.NaN;
            double valLoss = Double.NaN;
            int evalEvery = spec.eval().every();
            for (int step = 0; step < steps; step++) {
                Trainer.StepStats s = trainer.step(step);
                trainSeconds += s.seconds();
                trainTokens += s.tokens();
                lastLoss = s.loss();
                if (!Double.isFinite(lastLoss)) {
                    throw new IllegalStateException("training diverged at step " + step + " (loss " + lastLoss
                            + "); lower optimizer.lr or raise optimizer.warmupSteps");
                }
                listener.onStep(s, steps);
                boolean last = step == steps - 1;
                if (last || (evalEvery > 0 && (step + 1) % evalEvery == 0)) {
                    valLoss = Evaluator.validationLoss(model, heldOut, spec.eval().maxWindows(), evalBatch);
                    listener.onEval(step + 1, valLoss);
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            return new Summary(spec.name(), config.mode().wireName(), steps, trainTokens, lastLoss, valLoss,
                    trainTokens / trainSeconds, seconds, backend.name());
        }
    }

    private static Backend backend(RunSpec spec) {
        return switch (spec.backend()) {
            case "cpu", "auto" -> new CpuBackend(spec.threads());
            default -> throw new IllegalArgumentException("backend: \"" + spec.backend() + "\" is not available in "
                    + "this build; use \"cpu\" or \"auto\"");
        };
    }

    private static String readCorpus(List<String> paths, Path baseDir) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String p : paths) {
            Path path = baseDir.resolve(p).normalize();
            List<Path> files = new ArrayList<>();
            if (Files.isDirectory(path)) {
                try (Stream<Path> walk = Files.walk(path)) {
                    walk.filter(Files::isRegularFile).sorted().forEach(files::add);
                }
            } else if (Files.isRegularFile(path)) {
                files.add(path);
            } else {
                throw new IllegalArgumentException("data.corpus: " + path + " does not exist");
            }
            for (Path f : files) {
                sb.append(Files.readString(f));
            }
        }
        return sb.toString();
    }
}
