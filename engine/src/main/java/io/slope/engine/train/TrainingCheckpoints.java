package io.slope.engine.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.KernelChoices;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.model.Parameter;
import io.slope.engine.parallel.Collective;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything needed to resume training exactly, as a {@link Checkpoint}: per parameter its values, AdamW moments and,
 * for sparse layers, the static row mask and the current column mask; in the state, the spec, the optimizer step
 * count per parameter group, the adapters' rank and scale once attached, the data loader's next step and the
 * backend's {@link KernelChoices}. The data loader and every random draw are pure functions of (seed, position), so
 * positions are the whole RNG state. The column mask needs no step of its own: it is stored, and when it is next
 * refreshed follows from the step.
 */
public final class TrainingCheckpoints {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** State key of the backend's kernel choices (docs/formats.md); absent for a backend that searches nothing. */
    private static final String KERNEL_CHOICES = "kernelChoices";

    /**
     * What a checkpoint restores: the model, the steps done and each optimizer group's step count; and, when the
     * backend searches its kernels anew instead of reusing the checkpoint's choices, a line saying so and why.
     */
    public record Resumed(GptModel model, long stepsDone, Map<Parameter.Group, Long> adamSteps, ResolvedSpec spec,
            ObjectNode state, Checkpoint checkpoint, Optional<String> kernelSearchNotice) {
        /** Step counts, and the moments of the parameters this optimizer's shard owns (any rank count re-shards). */
        public void restoreOptimizer(AdamW optimizer) {
            adamSteps.forEach(optimizer::restoreStepsTaken);
            optimizer.assignOwners(model.parameters());
            for (Parameter p : model.parameters()) {
                if (optimizer.owns(p)) {
                    AdamW.Moments mv = optimizer.moments(p);
                    model.backend().upload(mv.m(), checkpoint.tensor("adam_m/" + p.name()).toDoubles());
                    model.backend().upload(mv.v(), checkpoint.tensor("adam_v/" + p.name()).toDoubles());
                }
            }
        }
    }

    private TrainingCheckpoints() {}

    /**
     * Captures the state after {@code stepsDone} optimizer steps. Tensors are stored in the model's precision;
     * {@code extraState} entries (e.g. stage results) are kept in the checkpoint's state beside the training state.
     * With several ranks every rank calls this: the moment shards travel to every rank, so the checkpoint is whole and
     * restores onto any number of ranks.
     */
    public static Checkpoint capture(GptModel model, AdamW optimizer, Collective collective, long stepsDone,
            ResolvedSpec spec, Map<String, Double> extraState) {
        Backend backend = model.backend();
        boolean f64 = model.dtype() == DType.F64;
        List<NamedTensor> tensors = new ArrayList<>();
        optimizer.assignOwners(model.parameters());
        for (Parameter p : model.parameters()) {
            long[] shape = longs(p.value().shape());
            boolean mine = optimizer.owns(p);
            AdamW.Moments mv = mine ? optimizer.moments(p) : null;
            double[] m = collective.broadcast(mine ? backend.download(mv.m()) : null, optimizer.owner(p));
            double[] v = collective.broadcast(mine ? backend.download(mv.v()) : null, optimizer.owner(p));
            tensors.add(floats("param/" + p.name(), shape, backend.download(p.value()), f64));
            tensors.add(floats("adam_m/" + p.name(), shape, m, f64));
            tensors.add(floats("adam_v/" + p.name(), shape, v, f64));
            if (p.isSparse()) {
                tensors.add(NamedTensor.i32("row_kept/" + p.name(), shape, backend.rowKeptIndices(p.sparse())));
                tensors.add(NamedTensor.u8("column_mask/" + p.name(),
                        new long[] {p.sparse().dOut(), p.sparse().dIn()}, backend.columnMask(p.sparse())));
            }
        }
        ObjectNode state = JSON.createObjectNode();
        state.put("stepsDone", stepsDone);
        state.put("adamSteps", optimizer.stepsTaken(Parameter.Group.MAIN));
        state.put("adapterAdamSteps", optimizer.stepsTaken(Parameter.Group.ADAPTERS));
        state.put("adapterRank", model.adapterRank());
        state.put("adapterScale", model.adapterScale());
        state.put("loaderNextStep", stepsDone);
        state.put("precision", model.dtype().name());
        KernelChoices kernelChoices = backend.kernelChoices();
        if (kernelChoices.searches()) {
            state.set(KERNEL_CHOICES, JSON.valueToTree(kernelChoices));
        }
        extraState.forEach(state::put);
        try {
            state.set("spec", JSON.readTree(RunSpecCodec.toJson(spec)));
        } catch (Exception e) {
            throw new IllegalStateException("a RunSpec always serialises to JSON", e);
        }
        return new Checkpoint(stepsDone, tensors, state);
    }

    /**
     * Rebuilds the model and its adapters, the backend reusing the checkpoint's kernel choices where they apply; the
     * optimizer's state comes back through {@link Resumed#restoreOptimizer}.
     */
    public static Resumed restore(Backend backend, GptConfig config, Checkpoint checkpoint) {
        return restore(backend, config, checkpoint, GptModel.Use.TRAINING);
    }

    /** As {@link #restore(Backend, GptConfig, Checkpoint)}, the model built for {@code use}. */
    public static Resumed restore(Backend backend, GptConfig config, Checkpoint checkpoint, GptModel.Use use) {
        ObjectNode state = checkpoint.state();
        // Before the model: the choices apply when a plan is first made.
        Optional<String> kernelSearchNotice = reuseKernelChoices(backend, checkpoint);
        ResolvedSpec spec = RunSpecCodec.parseResolved(state.get("spec").toString());
        DType dtype = DType.valueOf(state.get("precision").asText());
        Map<String, double[]> values = new LinkedHashMap<>();
        Map<String, int[]> rowKept = new LinkedHashMap<>();
        Map<String, byte[]> columnMasks = new LinkedHashMap<>();
        for (String name : GptModel.parameterShapes(config).keySet()) {
            values.put(name, checkpoint.tensor("param/" + name).toDoubles());
            if (hasTensor(checkpoint, "row_kept/" + name)) {
                rowKept.put(name, checkpoint.tensor("row_kept/" + name).toInts());
                columnMasks.put(name, checkpoint.tensor("column_mask/" + name).toBytes());
            }
        }
        int adapterRank = state.path("adapterRank").asInt(0);
        Map<String, double[]> adapters = new LinkedHashMap<>();
        if (adapterRank > 0) {
            for (String name : GptModel.adapterShapes(config, adapterRank).keySet()) {
                adapters.put(name, checkpoint.tensor("param/" + name).toDoubles());
            }
        }
        GptModel model = GptModel.restore(backend, config, dtype, new ModelSnapshot(values, rowKept, columnMasks,
                adapters, adapterRank, state.path("adapterScale").asDouble(0)), use);
        Map<Parameter.Group, Long> adamSteps = new EnumMap<>(Parameter.Group.class);
        adamSteps.put(Parameter.Group.MAIN, state.get("adamSteps").asLong());
        adamSteps.put(Parameter.Group.ADAPTERS, state.path("adapterAdamSteps").asLong(0));
        return new Resumed(model, state.get("stepsDone").asLong(), adamSteps, spec, state, checkpoint,
                kernelSearchNotice);
    }

    /**
     * Hands the checkpoint's kernel choices to the backend when they were made on this GPU with these libraries;
     * otherwise (older checkpoints have none; another GPU or library could not reproduce the bits anyway) the
     * backend searches anew, and the notice says so. A backend that searches nothing gets nothing and no notice.
     */
    private static Optional<String> reuseKernelChoices(Backend backend, Checkpoint checkpoint) {
        KernelChoices current = backend.kernelChoices();
        if (!current.searches()) {
            return Optional.empty();
        }
        JsonNode node = checkpoint.state().get(KERNEL_CHOICES);
        if (node == null) {
            return Optional.of("checkpoint " + checkpoint.step() + " records no kernel choices: " + backend.name()
                    + " searches its GEMM algorithms anew, so the last bits may differ from the interrupted run's");
        }
        KernelChoices recorded;
        try {
            recorded = JSON.treeToValue(node, KernelChoices.class);
        } catch (JsonProcessingException | IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + checkpoint.step() + ": state." + KERNEL_CHOICES
                    + " is not {validFor: {…}, choices: {…}} of strings: " + e.getMessage(), e);
        }
        if (!recorded.appliesTo(current)) {
            return Optional.of("checkpoint " + checkpoint.step() + "'s kernel choices were made on "
                    + recorded.validFor() + ", this backend runs on " + current.validFor() + ": " + backend.name()
                    + " searches its GEMM algorithms anew (another GPU or library cannot reproduce the bits anyway)");
        }
        backend.reuseKernelChoices(recorded);
        return Optional.empty();
    }

    private static boolean hasTensor(Checkpoint checkpoint, String name) {
        return checkpoint.tensors().stream().anyMatch(t -> t.name().equals(name));
    }

    private static NamedTensor floats(String name, long[] shape, double[] values, boolean f64) {
        return f64 ? NamedTensor.f64(name, shape, values) : NamedTensor.f32(name, shape, values);
    }

    private static long[] longs(int[] shape) {
        long[] l = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            l[i] = shape[i];
        }
        return l;
    }
}
