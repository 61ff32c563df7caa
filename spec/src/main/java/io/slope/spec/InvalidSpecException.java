package io.slope.spec;

import java.util.List;
import java.util.stream.Collectors;

/** A spec that cannot run, with every problem found (not just the first). */
public final class InvalidSpecException extends RuntimeException {
    private final List<SpecError> errors;

    public InvalidSpecException(List<SpecError> errors) {
        super("invalid run spec:\n" + errors.stream().map(e -> "  - " + e).collect(Collectors.joining("\n")));
        this.errors = List.copyOf(errors);
    }

    public List<SpecError> errors() {
        return errors;
    }
}
