package io.slope.spec;

/** One problem with a spec: the dotted field path and what to do about it. */
public record SpecError(String field, String message) {
    @Override
    public String toString() {
        return field + ": " + message;
    }
}
