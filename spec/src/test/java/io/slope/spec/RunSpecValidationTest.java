package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

class RunSpecValidationTest {

    /** A spec's top-level members with one bad value, the field it must be reported on, and text the fix needs. */
    static Stream<Arguments> oneBadValue() {
        return Stream.of(
                bad("\"name\": \"my run\"", "name", "letters, digits, '.', '_' or '-'"),
                bad("\"name\": \"\"", "name", "1-64 characters"),
                bad("\"name\": \"-run\"", "name", "starting with a letter or digit"),
                bad("\"model\": {\"preset\": \"gpt5\"}", "model.preset",
                        "allowed: [tiny, mini, char-small, gpt2-small, gpt2-medium, gpt2-large, gpt2-xl]"),
                bad("\"model\": {\"layers\": 0}", "model.layers", "at least 1"),
                bad("\"model\": {\"heads\": 0}", "model.heads", "at least 1"),
                bad("\"model\": {\"dModel\": -64}", "model.dModel", "at least 1"),
                bad("\"model\": {\"seqLen\": 1}", "model.seqLen", "at least 2"),
                bad("\"model\": {\"dModel\": 100, \"heads\": 3}, \"sparsity\": {\"mode\": \"dense\"}", "model.dModel",
                        "divisible by model.heads=3 (got 100); e.g. 102"),
                bad("\"model\": {\"dModel\": 66, \"heads\": 2}", "model.dModel",
                        "divisible by sparsity.m=4; dModel=66 is not (try 68)"),
                bad("\"model\": {\"dModel\": 60, \"heads\": 3}, \"sparsity\": {\"m\": 8, \"n\": 2}", "model.dModel",
                        "divisible by sparsity.m=8; dModel=60 is not (try 72)"),
                bad("\"sparsity\": {\"mode\": \"sparse\"}", "sparsity.mode",
                        "allowed: [dense, sparse-no-double-prune, slope]"),
                bad("\"sparsity\": {\"m\": 1}", "sparsity.m", "between 2 and 32"),
                bad("\"sparsity\": {\"m\": 64}", "sparsity.m", "between 2 and 32"),
                bad("\"sparsity\": {\"n\": 0}", "sparsity.n", "1 <= n < m=4"),
                bad("\"sparsity\": {\"n\": 4}", "sparsity.n", "1 <= n < m=4"),
                bad("\"sparsity\": {\"columnMaskRefresh\": 0}", "sparsity.columnMaskRefresh",
                        "1 = refresh every optimizer step"),
                bad("\"adapters\": {\"start\": 0}", "adapters.start", "(0, 1]"),
                bad("\"adapters\": {\"start\": 1.01}", "adapters.start", "1 never adds them"),
                bad("\"adapters\": {\"rank\": 0}", "adapters.rank", "between 1 and model.dModel=64"),
                bad("\"adapters\": {\"rank\": 65}", "adapters.rank", "between 1 and model.dModel=64"),
                bad("\"optimizer\": {\"lr\": 0}", "optimizer.lr", "positive finite"),
                bad("\"optimizer\": {\"lr\": 1e400}", "optimizer.lr", "positive finite"),
                bad("\"optimizer\": {\"beta1\": 1}", "optimizer.beta1", "[0, 1)"),
                bad("\"optimizer\": {\"beta2\": -0.1}", "optimizer.beta2", "[0, 1)"),
                bad("\"optimizer\": {\"eps\": 0}", "optimizer.eps", "positive finite"),
                bad("\"optimizer\": {\"eps\": 1e400}", "optimizer.eps", "positive finite"),
                bad("\"optimizer\": {\"weightDecay\": -0.1}", "optimizer.weightDecay", "finite number >= 0"),
                bad("\"optimizer\": {\"weightDecay\": 1e999}", "optimizer.weightDecay", "finite number >= 0"),
                bad("\"optimizer\": {\"gradClip\": -1}", "optimizer.gradClip", "0 turns clipping off"),
                bad("\"optimizer\": {\"gradClip\": 1e400}", "optimizer.gradClip", "finite number >= 0"),
                bad("\"optimizer\": {\"minLrRatio\": 1.5}", "optimizer.minLrRatio", "[0, 1]"),
                bad("\"optimizer\": {\"warmupSteps\": 1000}", "optimizer.warmupSteps",
                        "[0, training.steps) = [0, 1000)"),
                bad("\"optimizer\": {\"warmupSteps\": -1}", "optimizer.warmupSteps", "[0, training.steps)"),
                bad("\"training\": {\"steps\": 0}", "training.steps", "at least 1"),
                bad("\"training\": {\"batchSize\": 0}", "training.batchSize", "at least 1"),
                bad("\"training\": {\"gradAccum\": 0}", "training.gradAccum", "at least 1"),
                bad("\"eval\": {\"every\": -1}", "eval.every", ">= 0"),
                bad("\"eval\": {\"maxWindows\": -5}", "eval.maxWindows", ">= 0"),
                bad("\"checkpointEvery\": -1", "checkpointEvery", ">= 0"),
                bad("\"backend\": \"tpu\"", "backend", "allowed: [auto, cpu, cuda]"),
                bad("\"precision\": \"bf16\"", "precision", "allowed: [fp32, fp64]"),
                bad("\"precision\": \"fp64\", \"backend\": \"cuda\"", "precision", "use backend \"cpu\""),
                bad("\"threads\": -1", "threads", ">= 0"),
                bad("\"training\": {\"steps\": 100000}, \"checkpointEvery\": 99", "checkpointEvery",
                        "at most 1000 periodic checkpoints: 0 or at least 100 for training.steps=100000 (got 99)"));
    }

    /** The upper bounds docs/spec.md gives: what one run may ask of a shared service. */
    @ParameterizedTest(name = "{0} <= {1}")
    @CsvSource(delimiter = '|', value = {
        "model.layers | 256 |",
        "model.dModel | 16384 |",
        "model.seqLen | 16384 |",
        "training.steps | 10000000 | \"checkpointEvery\": 0",
        "training.batchSize | 4096 |",
        "training.gradAccum | 4096 |",
        "threads | 1024 |"})
    void aValuePastItsUpperBoundIsRejectedNamingTheBound(String field, int bound, String alongside) {
        String[] path = field.split("\\.");
        String past = Integer.toString(bound + 1);
        String member = path.length == 1 ? "\"" + field + "\": " + past
                : "\"" + path[0] + "\": {\"" + path[1] + "\": " + past + "}";
        List<SpecError> errors = Specs.errorsOf(Specs.withCorpus(alongside == null ? member
                : member + ", " + alongside));

        assertEquals(List.of(field), errors.stream().map(SpecError::field).toList(), errors.toString());
        assertTrue(errors.getFirst().message().contains("at most " + bound + " (got " + past + ")"),
                errors.getFirst().message());
    }

    private static Arguments bad(String members, String field, String fix) {
        return Arguments.of(members, field, fix);
    }

    @ParameterizedTest(name = "{1}: {0}")
    @MethodSource("oneBadValue")
    void aBadValueIsRejectedOnItsFieldWithTheFix(String members, String field, String fix) {
        List<SpecError> errors = Specs.errorsOf(Specs.withCorpus(members));

        assertEquals(List.of(field), errors.stream().map(SpecError::field).toList(), errors.toString());
        assertTrue(errors.getFirst().message().contains(fix), errors.getFirst().message());
    }

    @ParameterizedTest(name = "data: {0}")
    @MethodSource("badData")
    void aBadDataSectionIsRejectedOnItsField(String data, String field, String fix) {
        List<SpecError> errors = Specs.errorsOf("{\"data\": " + data + "}");

        assertEquals(List.of(field), errors.stream().map(SpecError::field).toList(), errors.toString());
        assertTrue(errors.getFirst().message().contains(fix), errors.getFirst().message());
    }

    static Stream<Arguments> badData() {
        return Stream.of(
                bad("{}", "data.corpus", "at least one text file or folder"),
                bad("{\"corpus\": []}", "data.corpus", "at least one text file or folder"),
                bad("{\"corpus\": [\"a.txt\", \" \"]}", "data.corpus", "at least one text file or folder"),
                bad("{\"corpus\": [\"a.txt\"], \"tokenizer\": \"bpe\"}", "data.tokenizer", "allowed: [char, gpt2]"),
                bad("{\"corpus\": [\"a.txt\"], \"valFraction\": 0}", "data.valFraction", "(0, 0.5]"),
                bad("{\"corpus\": [\"a.txt\"], \"valFraction\": 0.6}", "data.valFraction", "(0, 0.5]"),
                bad("{\"corpus\": " + IntStream.range(0, 65).mapToObj(i -> "\"f" + i + ".txt\"").toList() + "}",
                        "data.corpus", "at most 64 entries (got 65)"),
                bad("{\"corpus\": [\"a.txt\", \"b.txt\", \"a.txt\"]}", "data.corpus[2]",
                        "the same as data.corpus[0]; list each corpus once"),
                bad("{\"corpus\": [\"a.txt\"], \"validation\": []}", "data.validation",
                        "at least one text file or folder of held-out text, e.g. [\"val/\"], or be left out"),
                bad("{\"corpus\": [\"a.txt\"], \"validation\": [\"\"]}", "data.validation",
                        "at least one text file or folder of held-out text"),
                bad("{\"corpus\": [\"a.txt\"], \"validation\": " + IntStream.range(0, 65)
                        .mapToObj(i -> "\"v" + i + ".txt\"").toList() + "}",
                        "data.validation", "at most 64 entries (got 65)"),
                bad("{\"corpus\": [\"a.txt\"], \"validation\": [\"v.txt\", \"v.txt\"]}", "data.validation[1]",
                        "the same as data.validation[0]; list each corpus once"),
                bad("{\"corpus\": [\"a.txt\", \"b.txt\"], \"validation\": [\"b.txt\"]}", "data.validation[0]",
                        "is also data.corpus[1]; held-out text must not be trained on"),
                bad("{\"corpus\": [\"a.txt\"], \"validation\": [\"v.txt\"], \"valFraction\": 0.1}",
                        "data.valFraction", "cannot be given with data.validation: the held-out split is either the "
                                + "files of data.validation or a fraction of data.corpus; remove one of the two"));
    }

    @Test
    void heldOutFilesReplaceTheHeldOutFraction() {
        ResolvedSpec spec = RunSpecCodec.parseResolved(
                "{\"data\": {\"corpus\": [\"train/\"], \"validation\": [\"val/a.txt\", \"val/b.txt\"]}}");

        assertEquals(new RunSpec.Data(List.of("train/"), List.of("val/a.txt", "val/b.txt"), "char", null),
                spec.toRunSpec().data());
    }

    @Test
    void aSpecWithoutDataNamesTheCorpus() {
        List<SpecError> errors = Specs.errorsOf("{}");

        assertEquals(List.of("data.corpus"), errors.stream().map(SpecError::field).toList());
    }

    @Test
    void everyProblemIsReportedTogetherInFieldOrder() {
        List<SpecError> errors = Specs.errorsOf("""
                {"name": "a b", "model": {"preset": "huge", "layers": 0}, "sparsity": {"mode": "sparse"},
                 "optimizer": {"lr": -1}, "training": {"batchSize": 0}, "data": {"corpus": []},
                 "backend": "tpu"}""");

        assertEquals(List.of("name", "model.preset", "model.layers", "sparsity.mode", "optimizer.lr",
                "training.batchSize", "data.corpus", "backend"), errors.stream().map(SpecError::field).toList());
    }

    @Test
    void anUnknownPresetWithAFullShapeIsStillRejected() {
        List<SpecError> errors = Specs.errorsOf(Specs.withCorpus(
                "\"model\": {\"preset\": \"custom\", \"layers\": 2, \"heads\": 2, \"dModel\": 32, \"seqLen\": 16}"));

        assertEquals(List.of("model.preset"), errors.stream().map(SpecError::field).toList());
    }

    @Test
    void theExceptionMessageListsEveryError() {
        InvalidSpecException e = assertThrows(InvalidSpecException.class,
                () -> RunSpecCodec.parseResolved("{\"threads\": -1}"));

        assertEquals("""
                invalid run spec:
                  - data.corpus: must list at least one text file or folder, e.g. ["../shared/data/tinyshakespeare.txt"]
                  - threads: must be >= 0 (got -1)""", e.getMessage());
    }
}
