package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;

/** Builds test specs: a corpus is the one field every spec needs, so helpers add it. */
final class Specs {
    private Specs() {}

    /** Top-level members that give every field but the corpus a value other than its default. */
    static final String EVERY_FIELD = """
            "name": "exp_2.b", "model": {"preset": "mini", "dModel": 96, "heads": 3, "seqLen": 33},
            "sparsity": {"n": 1, "m": 8, "columnMaskRefresh": 100, "denseFirstQkv": false},
            "adapters": {"start": 0.875, "rank": 7},
            "optimizer": {"lr": 3.0e-3, "beta1": 0.8, "beta2": 0.999, "eps": 1e-6, "weightDecay": 0,
                          "gradClip": 0, "warmupSteps": 17, "minLrRatio": 0.1},
            "training": {"steps": 1234, "batchSize": 3, "gradAccum": 5, "seed": 9007199254740993},
            "eval": {"every": 0, "maxWindows": 12}, "checkpointEvery": 0,
            "backend": "cpu", "precision": "fp64", "threads": 7""";

    /** A spec of the given top-level members (JSON text without braces) plus a corpus. */
    static String withCorpus(String members) {
        String corpus = "\"data\": {\"corpus\": [\"corpus.txt\"]}";
        return members.isBlank() ? "{" + corpus + "}" : "{" + corpus + ", " + members + "}";
    }

    static ResolvedSpec resolved(String members) {
        return RunSpecCodec.parseResolved(withCorpus(members));
    }

    /** The errors a spec is rejected with; fails the test if it is accepted. */
    static List<SpecError> errorsOf(String json) {
        return assertThrows(InvalidSpecException.class, () -> RunSpecCodec.parseResolved(json)).errors();
    }
}
