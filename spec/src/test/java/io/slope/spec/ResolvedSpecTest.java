package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Resolution gives a {@link ResolvedSpec}, and a resolved spec is stored and sent as exactly the JSON the resolved
 * {@link RunSpec} was before it had its own type: checkpoints, run rows and workflow histories written then read now.
 */
class ResolvedSpecTest {

    /** The JSON of the minimal spec's resolution, as every earlier version wrote it (docs/spec.md). */
    private static final String MINIMAL_RESOLVED_JSON = """
            {
              "name" : "run",
              "model" : {
                "preset" : "tiny",
                "layers" : 2,
                "heads" : 4,
                "dModel" : 64,
                "seqLen" : 64
              },
              "sparsity" : {
                "mode" : "slope",
                "n" : 2,
                "m" : 4,
                "columnMaskRefresh" : 1,
                "denseFirstQkv" : true
              },
              "adapters" : {
                "start" : 0.99,
                "rank" : 4
              },
              "optimizer" : {
                "lr" : 6.0E-4,
                "beta1" : 0.9,
                "beta2" : 0.95,
                "eps" : 1.0E-8,
                "weightDecay" : 0.1,
                "gradClip" : 1.0,
                "warmupSteps" : 10,
                "minLrRatio" : 0.0
              },
              "training" : {
                "steps" : 1000,
                "batchSize" : 8,
                "gradAccum" : 1,
                "seed" : 1234
              },
              "data" : {
                "corpus" : [ "corpus.txt" ],
                "tokenizer" : "char",
                "valFraction" : 0.1
              },
              "eval" : {
                "every" : 250,
                "maxWindows" : 0
              },
              "checkpointEvery" : 500,
              "backend" : "auto",
              "precision" : "fp32",
              "threads" : 0
            }""";

    /** Specs as users write them: defaults, every preset and mode, every field given, held-out files. */
    static Stream<String> rawSpecs() {
        Stream<String> presets = Preset.wireNames().stream()
                .map(p -> Specs.withCorpus("\"model\": {\"preset\": \"" + p + "\"}"));
        Stream<String> modes = Mode.wireNames().stream()
                .map(m -> Specs.withCorpus("\"sparsity\": {\"mode\": \"" + m + "\"}"));
        Stream<String> others = Stream.of(Specs.withCorpus(""), Specs.withCorpus(Specs.EVERY_FIELD),
                Specs.withCorpus("\"adapters\": {\"start\": 1}"),
                "{\"backend\": \"cuda\", \"data\": {\"corpus\": [\"a\", \"b\"], \"valFraction\": 0.5}}",
                "{\"data\": {\"corpus\": [\"train/\"], \"validation\": [\"val/\"], \"tokenizer\": \"gpt2\"}}");
        return Stream.of(presets, modes, others).flatMap(s -> s);
    }

    @Test
    void resolutionFillsTheDefaultsAndReadsTheNamesAsEnums() {
        ResolvedSpec spec = RunSpecs.resolve(RunSpecCodec.parse(Specs.withCorpus("""
                "model": {"preset": "char-small"}, "sparsity": {"mode": "sparse-no-double-prune"},
                "backend": "cuda"
                """)));

        assertEquals(new ResolvedSpec.Model(Preset.CHAR_SMALL, 6, 6, 384, 256), spec.model());
        assertEquals(Mode.SPARSE_NO_DOUBLE_PRUNE, spec.sparsity().mode());
        assertEquals(BackendChoice.CUDA, spec.backend());
        assertEquals(Precision.FP32, spec.precision());
        assertEquals(8, spec.adapters().rank());
        assertEquals(new ResolvedSpec.Data(List.of("corpus.txt"), List.of(), "char", 0.1), spec.data());
        assertFalse(spec.data().heldOutFiles());
    }

    @Test
    void heldOutFilesLeaveNoFraction() {
        ResolvedSpec spec = RunSpecCodec.parseResolved(
                "{\"data\": {\"corpus\": [\"train/\"], \"validation\": [\"val/\"]}}");

        assertTrue(spec.data().heldOutFiles());
        assertEquals(new ResolvedSpec.Data(List.of("train/"), List.of("val/"), "char", 0), spec.data());
    }

    @Test
    void resolutionRefusesAnInvalidSpecWithEveryProblem() {
        RunSpec bad = RunSpecCodec.parse(Specs.withCorpus("\"backend\": \"tpu\", \"precision\": \"fp16\""));

        List<SpecError> errors = assertThrows(InvalidSpecException.class, () -> RunSpecs.resolve(bad)).errors();

        assertEquals(List.of("backend", "precision"), errors.stream().map(SpecError::field).toList());
    }

    @Test
    void theMinimalResolutionIsWrittenAsBefore() {
        assertEquals(MINIMAL_RESOLVED_JSON, RunSpecCodec.toJson(Specs.resolved("")));
    }

    /** What a resolved spec was written as before: the RunSpec with every default filled in. */
    @ParameterizedTest
    @MethodSource("rawSpecs")
    void aResolvedSpecIsWrittenAsTheFilledInRunSpecWas(String json) {
        RunSpec raw = RunSpecCodec.parse(json);

        ResolvedSpec resolved = RunSpecs.resolve(raw);

        assertEquals(RunSpecs.withDefaults(raw), resolved.toRunSpec());
        assertEquals(RunSpecCodec.toJson(RunSpecs.withDefaults(raw)), RunSpecCodec.toJson(resolved));
        assertEquals(resolved, RunSpecCodec.parseResolved(RunSpecCodec.toJson(resolved)));
    }

    /** A resolved spec inside another object (a workflow's activity input) reads and writes as its RunSpec did. */
    @ParameterizedTest
    @MethodSource("rawSpecs")
    void theJacksonModuleWritesAResolvedSpecAsItsRunSpec(String json) throws Exception {
        ObjectMapper mapper = new ObjectMapper().registerModule(RunSpecJackson.module());
        ResolvedSpec resolved = RunSpecCodec.parseResolved(json);

        String written = mapper.writeValueAsString(new Holding<>("r1", resolved));

        assertEquals(mapper.writeValueAsString(new Holding<>("r1", resolved.toRunSpec())), written);
        assertEquals(resolved, mapper.readValue(written, HoldingResolved.class).spec());
        assertEquals(resolved.toRunSpec(), mapper.readValue(written, HoldingRaw.class).spec());
    }

    @Test
    void withMethodsReplaceOnePart() {
        ResolvedSpec spec = Specs.resolved("");

        ResolvedSpec changed = spec.withTraining(new ResolvedSpec.Training(5, 1, 1, 7L)).withThreads(3)
                .withModel(Preset.MINI.model()).withAdapters(new ResolvedSpec.Adapters(1.0, 8));

        assertEquals(new ResolvedSpec(spec.name(), Preset.MINI.model(), spec.sparsity(),
                new ResolvedSpec.Adapters(1.0, 8), spec.optimizer(), new ResolvedSpec.Training(5, 1, 1, 7L),
                spec.data(), spec.eval(), spec.checkpointEvery(), spec.backend(), spec.precision(), 3), changed);
    }

    record Holding<T>(String runId, T spec) {}

    record HoldingResolved(String runId, ResolvedSpec spec) {}

    record HoldingRaw(String runId, RunSpec spec) {}
}
