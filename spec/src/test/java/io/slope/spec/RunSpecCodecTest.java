package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class RunSpecCodecTest {

    @Test
    void anUnknownTopLevelFieldIsNamedWithTheAllowedOnes() {
        List<SpecError> errors = Specs.errorsOf(Specs.withCorpus("\"learningRate\": 0.001"));

        assertEquals(List.of(new SpecError("learningRate", "unknown field; allowed here: adapters, backend, "
                + "checkpointEvery, data, eval, model, name, optimizer, precision, sparsity, threads, training")),
                errors);
    }

    @Test
    void anUnknownNestedFieldIsNamedByItsPathWithTheAllowedOnes() {
        List<SpecError> errors = Specs.errorsOf(Specs.withCorpus("\"optimizer\": {\"learningRate\": 0.001}"));

        assertEquals(List.of(new SpecError("optimizer.learningRate", "unknown field; allowed here: beta1, beta2, "
                + "eps, gradClip, lr, minLrRatio, warmupSteps, weightDecay")), errors);
    }

    /** A member of the wrong JSON type, the field it must be reported on, and the whole message. */
    static Stream<Arguments> wrongTypes() {
        return Stream.of(
                Arguments.of("\"model\": {\"layers\": 2.5}", "model.layers", "expected an integer, got the number 2.5"),
                Arguments.of("\"model\": {\"layers\": \"12\"}", "model.layers",
                        "expected an integer, got the string \"12\""),
                Arguments.of("\"model\": {\"layers\": true}", "model.layers", "expected an integer, got true"),
                Arguments.of("\"model\": \"tiny\"", "model", "expected an object, got the string \"tiny\""),
                Arguments.of("\"name\": 5", "name", "expected a string, got the number 5"),
                Arguments.of("\"backend\": [\"cpu\"]", "backend", "expected a string, got a list"),
                Arguments.of("\"sparsity\": {\"denseFirstQkv\": 1}", "sparsity.denseFirstQkv",
                        "expected true or false, got the number 1"),
                Arguments.of("\"sparsity\": {\"denseFirstQkv\": \"yes\"}", "sparsity.denseFirstQkv",
                        "expected true or false, got the string \"yes\""),
                Arguments.of("\"optimizer\": {\"lr\": \"6e-4\"}", "optimizer.lr",
                        "expected a number, got the string \"6e-4\""),
                Arguments.of("\"training\": {\"seed\": 1.5}", "training.seed", "expected an integer, got the number 1.5"),
                Arguments.of("\"training\": {\"steps\": 3000000000}", "training.steps",
                        "expected an integer, got the number 3000000000, which is out of range (Numeric value "
                                + "(3000000000) out of range of int (-2147483648 - 2147483647))"));
    }

    @ParameterizedTest(name = "{1}: {0}")
    @MethodSource("wrongTypes")
    void aWrongJsonTypeNamesTheFieldAndWhatWasGiven(String members, String field, String message) {
        assertEquals(List.of(new SpecError(field, message)), Specs.errorsOf(Specs.withCorpus(members)));
    }

    @Test
    void aWrongTypeInsideTheCorpusListNamesTheElement() {
        List<SpecError> errors = Specs.errorsOf("{\"data\": {\"corpus\": [\"a.txt\", 7]}}");

        assertEquals(List.of(new SpecError("data.corpus[1]", "expected a string, got the number 7")), errors);
    }

    @Test
    void aSingleCorpusStringIsNotAList() {
        List<SpecError> errors = Specs.errorsOf("{\"data\": {\"corpus\": \"a.txt\"}}");

        assertEquals(List.of(new SpecError("data.corpus", "expected a list, got the string \"a.txt\"")), errors);
    }

    @Test
    void malformedJsonGivesLineAndColumn() {
        List<SpecError> errors = Specs.errorsOf("""
                {
                  "name": "a"
                  "model": {}
                }""");

        assertEquals(1, errors.size());
        assertEquals("$", errors.getFirst().field());
        assertEquals("not valid JSON at line 3, column 3: Unexpected character ('\"' (code 34)): was expecting "
                + "comma to separate Object entries", errors.getFirst().message());
    }

    @Test
    void aTrailingCommaGivesLineAndColumn() {
        List<SpecError> errors = Specs.errorsOf("{\"data\": {\"corpus\": [\"a.txt\",]}}");

        assertEquals("$", errors.getFirst().field());
        assertStartsWith("not valid JSON at line 1, column 30: ", errors.getFirst().message());
    }

    /** Jackson reports a duplicate where the second name ends, at its colon. */
    @Test
    void aFieldGivenTwiceIsAnErrorNotLastWins() {
        List<SpecError> errors = Specs.errorsOf("{\"name\": \"a\", \"name\": \"b\", \"data\": {\"corpus\": [\"c\"]}}");

        assertEquals(List.of(new SpecError("$", "not valid JSON at line 1, column 21: Duplicate field 'name'")),
                errors);
    }

    @Test
    void contentAfterTheSpecIsAnError() {
        List<SpecError> errors = Specs.errorsOf("{\"data\": {\"corpus\": [\"c\"]}} {}");

        assertEquals(List.of(new SpecError("$",
                "not valid JSON at line 1, column 29: unexpected content after the spec's closing brace")), errors);
    }

    @ParameterizedTest(name = "\"{0}\"")
    @MethodSource("notAnObject")
    void aDocumentThatIsNotAnObjectIsRejected(String json, String message) {
        assertEquals(List.of(new SpecError("$", message)), Specs.errorsOf(json));
    }

    static Stream<Arguments> notAnObject() {
        return Stream.of(
                Arguments.of("", "the spec is empty; expected a JSON object"),
                Arguments.of("  \n ", "the spec is empty; expected a JSON object"),
                Arguments.of("null", "the spec is empty; expected a JSON object"),
                Arguments.of("[]", "expected a JSON object, got a list"),
                Arguments.of("\"tiny\"", "expected a JSON object, got the string \"tiny\""));
    }

    @Test
    void explicitNullsMeanDefaults() {
        ResolvedSpec spec = RunSpecCodec.parseResolved(
                "{\"model\": null, \"optimizer\": {\"lr\": null}, \"data\": {\"corpus\": [\"corpus.txt\"]}}");

        assertEquals(Specs.resolved(""), spec);
    }

    static Stream<ResolvedSpec> resolvedSpecs() {
        Stream<ResolvedSpec> presets = Preset.wireNames().stream()
                .map(p -> Specs.resolved("\"model\": {\"preset\": \"" + p + "\"}"));
        Stream<ResolvedSpec> modes = Mode.wireNames().stream()
                .map(m -> Specs.resolved("\"sparsity\": {\"mode\": \"" + m + "\"}"));
        Stream<ResolvedSpec> custom = Stream.of(Specs.resolved(Specs.EVERY_FIELD));
        Stream<ResolvedSpec> heldOutFiles = Stream.of(RunSpecCodec.parseResolved(
                "{\"data\": {\"corpus\": [\"train/\"], \"validation\": [\"val/\"], \"tokenizer\": \"gpt2\"}}"));
        return Stream.of(presets, modes, custom, heldOutFiles).flatMap(s -> s);
    }

    @ParameterizedTest
    @MethodSource("resolvedSpecs")
    void toJsonThenParseResolvedIsIdentityOnResolvedSpecs(ResolvedSpec resolved) {
        assertEquals(resolved, RunSpecCodec.parseResolved(RunSpecCodec.toJson(resolved)));
    }

    @Test
    void toJsonLeavesDefaultedFieldsOut() {
        RunSpec partial = RunSpecCodec.parse(Specs.withCorpus("\"training\": {\"steps\": 50}"));

        String json = RunSpecCodec.toJson(partial);

        assertFalse(json.contains("null"), json);
        assertEquals(partial, RunSpecCodec.parse(json));
    }

    private static void assertStartsWith(String prefix, String actual) {
        assertEquals(prefix, actual.substring(0, Math.min(prefix.length(), actual.length())), actual);
    }
}
