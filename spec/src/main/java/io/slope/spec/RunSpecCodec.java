package io.slope.spec;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.InputCoercionException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.type.LogicalType;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The one JSON codec for {@link RunSpec} and {@link ResolvedSpec}. The CLI, the engine, the workflows and the API all
 * parse through here, so a bad spec gets the same message wherever it is submitted.
 *
 * <p>Types are strict: a spec is a contract, so {@code "layers": 2.5}, {@code "layers": "12"} or {@code "name": 5}
 * are errors rather than silently truncated or converted, and a field given twice is an error rather than "last wins".
 */
public final class RunSpecCodec {
    private static final ObjectMapper MAPPER = strictMapper();

    private RunSpecCodec() {}

    private static ObjectMapper strictMapper() {
        ObjectMapper mapper = new ObjectMapper()
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
                .enable(SerializationFeature.INDENT_OUTPUT);
        // ALLOW_COERCION_OF_SCALARS does not cover numbers and booleans read into strings.
        mapper.coercionConfigFor(LogicalType.Textual)
                .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail);
        return mapper;
    }

    /** Parses without resolving defaults or validating; syntax errors give line and column, type errors the field. */
    public static RunSpec parse(String json) {
        // A tree first: it separates syntax errors (with a location) from type errors (with a field path), and lets a
        // type error quote the value that was actually given.
        JsonNode tree;
        try {
            tree = MAPPER.readTree(json);
        } catch (MismatchedInputException e) {
            // The only mismatch a tree read reports: FAIL_ON_TRAILING_TOKENS.
            throw invalid("$", "not valid JSON" + location(e) + ": unexpected content after the spec's closing brace");
        } catch (JsonProcessingException e) {
            throw invalid("$", "not valid JSON" + location(e) + ": " + firstLine(e.getOriginalMessage()));
        }
        if (tree.isMissingNode() || tree.isNull()) {
            throw invalid("$", "the spec is empty; expected a JSON object");
        }
        if (!tree.isObject()) {
            throw invalid("$", "expected a JSON object, got " + describe(tree));
        }
        try {
            return MAPPER.treeToValue(tree, RunSpec.class);
        } catch (UnrecognizedPropertyException e) {
            String allowed = e.getKnownPropertyIds().stream().map(Object::toString).sorted()
                    .collect(Collectors.joining(", "));
            throw invalid(path(e), "unknown field; allowed here: " + allowed);
        } catch (MismatchedInputException e) {
            throw invalid(path(e), "expected " + typeName(e.getTargetType()) + ", got " + given(tree, e));
        } catch (JsonMappingException e) {
            if (e.getCause() instanceof InputCoercionException overflow) {
                throw invalid(path(e), "expected " + typeName(overflow.getTargetType()) + ", got " + given(tree, e)
                        + ", which is out of range (" + firstLine(overflow.getOriginalMessage()) + ")");
            }
            throw invalid(path(e), firstLine(e.getOriginalMessage()));
        } catch (JsonProcessingException e) {
            throw invalid("$", firstLine(e.getOriginalMessage()));
        }
    }

    /** Parses, fills in defaults and validates ({@link RunSpecs#resolve}). */
    public static ResolvedSpec parseResolved(String json) {
        return RunSpecs.resolve(parse(json));
    }

    public static String toJson(RunSpec spec) {
        try {
            return MAPPER.writeValueAsString(spec);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a RunSpec always serialises", e);
        }
    }

    /** The JSON a resolved spec is stored and sent as: that of {@link ResolvedSpec#toRunSpec()}. */
    public static String toJson(ResolvedSpec spec) {
        return toJson(spec.toRunSpec());
    }

    private static InvalidSpecException invalid(String field, String message) {
        return new InvalidSpecException(List.of(new SpecError(field, message)));
    }

    private static String location(JsonProcessingException e) {
        if (e.getLocation() == null || e.getLocation().getLineNr() < 1) {
            return "";
        }
        return " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
    }

    private static String path(JsonMappingException e) {
        StringBuilder sb = new StringBuilder();
        for (JsonMappingException.Reference ref : e.getPath()) {
            if (ref.getFieldName() != null) {
                if (!sb.isEmpty()) {
                    sb.append('.');
                }
                sb.append(ref.getFieldName());
            } else {
                sb.append('[').append(ref.getIndex()).append(']');
            }
        }
        return sb.isEmpty() ? "$" : sb.toString();
    }

    /** The value the spec gave at the error's path, as the user wrote it. */
    private static String given(JsonNode tree, JsonMappingException e) {
        JsonPointer pointer = JsonPointer.empty();
        for (JsonMappingException.Reference ref : e.getPath()) {
            pointer = ref.getFieldName() != null ? pointer.appendProperty(ref.getFieldName())
                    : pointer.appendIndex(ref.getIndex());
        }
        JsonNode node = tree.at(pointer);
        return node.isMissingNode() ? "a value of another type" : describe(node);
    }

    private static String describe(JsonNode node) {
        if (node.isTextual()) {
            return "the string " + node;
        }
        if (node.isNumber()) {
            return "the number " + node;
        }
        if (node.isBoolean()) {
            return node.toString();
        }
        if (node.isArray()) {
            return "a list";
        }
        if (node.isObject()) {
            return "an object";
        }
        return "null";
    }

    private static String typeName(Class<?> type) {
        if (type == null) {
            return "a value of another type";
        }
        if (type == Integer.class || type == int.class || type == Long.class || type == long.class) {
            return "an integer";
        }
        if (type == Double.class || type == double.class) {
            return "a number";
        }
        if (type == Boolean.class || type == boolean.class) {
            return "true or false";
        }
        if (type == String.class) {
            return "a string";
        }
        if (List.class.isAssignableFrom(type)) {
            return "a list";
        }
        return "an object";
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
