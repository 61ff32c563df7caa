package io.slope.spec;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.exc.InvalidFormatException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The one JSON codec for {@link RunSpec}. The CLI, the engine, the workflows and the API all parse through here, so a
 * bad spec gets the same message wherever it is submitted.
 */
public final class RunSpecCodec {
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(SerializationFeature.INDENT_OUTPUT);

    private RunSpecCodec() {}

    /** Parses without resolving defaults or validating; syntax and type errors name the field. */
    public static RunSpec parse(String json) {
        try {
            RunSpec spec = MAPPER.readValue(json, RunSpec.class);
            if (spec == null) {
                throw new InvalidSpecException(List.of(new SpecError("$", "the spec is empty; expected a JSON object")));
            }
            return spec;
        } catch (UnrecognizedPropertyException e) {
            String allowed = e.getKnownPropertyIds().stream().map(Object::toString).sorted()
                    .collect(Collectors.joining(", "));
            throw new InvalidSpecException(List.of(new SpecError(path(e),
                    "unknown field; allowed here: " + allowed)));
        } catch (InvalidFormatException e) {
            throw new InvalidSpecException(List.of(new SpecError(path(e),
                    "expected " + typeName(e.getTargetType()) + ", got " + e.getValue())));
        } catch (MismatchedInputException e) {
            throw new InvalidSpecException(List.of(new SpecError(path(e),
                    "expected " + typeName(e.getTargetType()) + " (" + firstLine(e.getOriginalMessage()) + ")")));
        } catch (JsonProcessingException e) {
            throw new InvalidSpecException(List.of(new SpecError(
                    e.getLocation() == null ? "$" : "line " + e.getLocation().getLineNr() + ", column "
                            + e.getLocation().getColumnNr(),
                    "not valid JSON: " + firstLine(e.getOriginalMessage()))));
        }
    }

    /** Parses, fills in defaults and validates; the result is complete (no null fields except adapters.rank=none). */
    public static RunSpec parseResolved(String json) {
        return RunSpecs.resolveAndValidate(parse(json));
    }

    public static String toJson(RunSpec spec) {
        try {
            return MAPPER.writeValueAsString(spec);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a RunSpec always serialises", e);
        }
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
