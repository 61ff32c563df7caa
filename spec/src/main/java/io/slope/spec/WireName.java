package io.slope.spec;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** An enum whose constants appear in the spec's JSON by their names in lower case, '_' written '-'. */
public interface WireName {
    String name();

    default String wireName() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static <E extends Enum<E> & WireName> List<String> names(Class<E> type) {
        return Arrays.stream(type.getEnumConstants()).map(WireName::wireName).toList();
    }

    /** The constant named {@code name}, refused naming {@code what} it should have been and the names allowed. */
    static <E extends Enum<E> & WireName> E parse(Class<E> type, String name, String what) {
        for (E e : type.getEnumConstants()) {
            if (e.wireName().equals(name)) {
                return e;
            }
        }
        throw new IllegalArgumentException("unknown " + what + " '" + name + "'; allowed: " + names(type));
    }
}
