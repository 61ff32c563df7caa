package io.slope.engine.run;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.LoadedCheckpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.data.Dataset;
import io.slope.engine.data.Tokenizer;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.train.TrainingCheckpoints;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.WireName;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A model restored from a checkpoint of a {@link LocalTrainingRun}, with the run's tokenizer (from its {@code
 * dataset/}): what {@code slope sample} runs. {@code form} is the function it serves: {@link Form#INFERENCE} only
 * where the checkpoint has adapters and that form was asked for.
 */
public record TrainedModel(GptModel model, Tokenizer tokenizer, long step, Path checkpointDirectory, Form form)
        implements AutoCloseable {
    private static final String CHECKPOINTS_DIR = "checkpoints";

    /**
     * The function served from a checkpoint with adapters (docs/method.md, "Merge and the inference form"): the model
     * as trained (its loss is {@code val_loss_adapters}), or the inference form (A pruned N:M along d_in, B scaled by
     * the adapters' scale: {@code val_loss_inference_form}), which runs each adapted layer as one fused sparse
     * forward. A checkpoint without adapters is the same in both.
     */
    public enum Form implements WireName {
        TRAINED,
        INFERENCE
    }

    /**
     * Loads from a run folder (its newest committed checkpoint that verifies) or from one checkpoint folder inside a
     * run ({@code RUN/checkpoints/STEP}). Errors name the {@code --checkpoint} flag.
     */
    public static TrainedModel load(Path directory, Backend backend) throws IOException {
        return load(directory, backend, Form.TRAINED);
    }

    /** As {@link #load(Path, Backend)}, serving {@code form}. */
    public static TrainedModel load(Path directory, Backend backend, Form form) throws IOException {
        if (!Files.isDirectory(directory)) {
            throw new IllegalArgumentException("--checkpoint: " + directory + " is not a folder");
        }
        Path runRoot;
        LoadedCheckpoint loaded;
        if (Files.isRegularFile(directory.resolve(LocalTrainingRun.SPEC_FILE))) {
            runRoot = directory;
            Optional<LoadedCheckpoint> latest = new LocalCheckpointStore(runRoot).loadLatest();
            if (latest.isEmpty()) {
                throw new IllegalArgumentException("--checkpoint: the run " + directory
                        + " has no committed checkpoint yet");
            }
            loaded = latest.get();
        } else {
            runRoot = runOfCheckpoint(directory);
            LocalCheckpointStore store = new LocalCheckpointStore(runRoot);
            long step = Long.parseLong(directory.toAbsolutePath().normalize().getFileName().toString());
            try {
                loaded = store.load(step);
            } catch (NoSuchFileException e) {
                throw new IllegalArgumentException("--checkpoint: " + directory + " is not a committed checkpoint "
                        + "(no COMMIT marker: it was cut short or is being deleted)");
            }
        }
        Tokenizer tokenizer = Dataset.readTokenizer(runRoot.resolve(LocalTrainingRun.DATASET_DIR));
        ResolvedSpec spec = RunSpecCodec.parseResolved(loaded.checkpoint().state().get("spec").toString());
        GptConfig config = GptConfig.of(spec, tokenizer.vocabSize());
        GptModel model = TrainingCheckpoints.restore(backend, config, loaded.checkpoint(), GptModel.Use.INFERENCE)
                .model();
        Form served = model.adapterRank() > 0 ? form : Form.TRAINED;
        if (served == Form.INFERENCE) {
            // The trained model is given back before the inference form is built: one model on the device at a time.
            ModelSnapshot trained;
            DType precision = model.dtype();
            try (GptModel asTrained = model) {
                trained = asTrained.snapshot();
            }
            model = GptModel.restore(backend, config, precision, Merge.inferenceForm(config, trained),
                    GptModel.Use.INFERENCE);
        }
        long step = loaded.checkpoint().step();
        return new TrainedModel(model, tokenizer, step, new LocalCheckpointStore(runRoot).checkpointDirectory(step),
                served);
    }

    /** The run folder of {@code RUN/checkpoints/STEP}; refuses any other folder, saying what is expected. */
    private static Path runOfCheckpoint(Path directory) {
        Path absolute = directory.toAbsolutePath().normalize();
        Path parent = absolute.getParent();
        Path runRoot = parent == null ? null : parent.getParent();
        boolean inCheckpoints = parent != null && parent.getFileName() != null
                && parent.getFileName().toString().equals(CHECKPOINTS_DIR);
        // Only the store's own names (zero-padded steps), so the folder given is the checkpoint loaded.
        boolean stepName = absolute.getFileName().toString().matches("[0-9]{10,18}");
        if (runRoot == null || !inCheckpoints || !stepName
                || !Files.isRegularFile(runRoot.resolve(LocalTrainingRun.SPEC_FILE))) {
            throw new IllegalArgumentException("--checkpoint: " + directory + " is neither a run folder (holding "
                    + LocalTrainingRun.SPEC_FILE + ") nor a checkpoint folder inside one (RUN/" + CHECKPOINTS_DIR
                    + "/STEP)");
        }
        return runRoot;
    }

    @Override
    public void close() {
        model.close();
    }
}
