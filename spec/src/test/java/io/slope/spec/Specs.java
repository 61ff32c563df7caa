package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;

/** Builds test specs: a corpus is the one field every spec needs, so helpers add it. */
final class Specs {
    private Specs() {}

    /** A spec of the given top-level members (JSON text without braces) plus a corpus. */
    static String withCorpus(String members) {
        String corpus = "\"data\": {\"corpus\": [\"corpus.txt\"]}";
        return members.isBlank() ? "{" + corpus + "}" : "{" + corpus + ", " + members + "}";
    }

    static RunSpec resolved(String members) {
        return RunSpecCodec.parseResolved(withCorpus(members));
    }

    /** The errors a spec is rejected with; fails the test if it is accepted. */
    static List<SpecError> errorsOf(String json) {
        return assertThrows(InvalidSpecException.class, () -> RunSpecCodec.parseResolved(json)).errors();
    }
}
