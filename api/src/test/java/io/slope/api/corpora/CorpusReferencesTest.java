package io.slope.api.corpora;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micronaut.context.ApplicationContext;
import io.slope.api.ApiHarness;
import io.slope.api.auth.Caller;
import io.slope.api.config.CorpusSettings;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.storage.Storage;
import io.slope.spec.ResolvedSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Local corpus paths, where the one-machine stack allows them: files under the allowed roots only. */
class CorpusReferencesTest {
    private static final Caller ALICE = new Caller("alice", false);
    private static ApplicationContext context;

    @TempDir
    Path root;

    @BeforeAll
    static void start() throws Exception {
        context = ApiHarness.get().server.getApplicationContext();
    }

    private CorpusReferences allowing(Path... roots) {
        return new CorpusReferences(context.getBean(CorpusRepository.class), context.getBean(Storage.class),
                new CorpusSettings(1024, true, List.of(roots).stream().map(Path::toString).toList(), 2));
    }

    @Test
    void aLocalCorpusIsAFileUnderAnAllowedRoot() throws Exception {
        Path corpus = Files.writeString(root.resolve("corpus.txt"), "some text\n");
        Files.createSymbolicLink(root.resolve("secrets.txt"), Path.of("/etc/passwd"));
        CorpusReferences references = allowing(root);

        assertDoesNotThrow(() -> references.check(ALICE, data(List.of(corpus.toString()))));
        for (String outside : List.of("/proc/self/environ", root + "/../../../../../../../../../etc/passwd", root + "/secrets.txt")) {
            ProblemException refused = assertThrows(ProblemException.class,
                    () -> references.check(ALICE, data(List.of(corpus.toString(), outside))), outside);
            assertEquals("data.corpus[1]", refused.errors().getFirst().field(), outside);
            String message = refused.errors().getFirst().message();
            assertTrue(message.contains(root.toRealPath().toString()) && message.contains("SLOPE_CORPUS_LOCAL_ROOTS"),
                    message);
        }
        ProblemException directory = assertThrows(ProblemException.class,
                () -> references.check(ALICE, data(List.of(root.toString()))));
        assertTrue(directory.errors().getFirst().message().contains("not a file"), directory::getMessage);
    }

    /** Held-out files are read like the corpus, so they are checked alike, each problem naming its own entry. */
    @Test
    void heldOutEntriesAreCheckedLikeTheCorpusNamingTheirField() throws Exception {
        Path corpus = Files.writeString(root.resolve("corpus.txt"), "some text\n");
        Path heldOut = Files.writeString(root.resolve("held-out.txt"), "other text\n");
        CorpusReferences references = allowing(root);
        assertDoesNotThrow(() -> references.check(ALICE, new ResolvedSpec.Data(List.of(corpus.toString()),
                List.of(heldOut.toString()), "char", 0)));

        String unknown = references.uri("0".repeat(64));
        ProblemException refused = assertThrows(ProblemException.class, () -> references.check(ALICE,
                new ResolvedSpec.Data(List.of("/etc/passwd"), List.of(heldOut.toString(), unknown, "/etc/passwd",
                        "s3://elsewhere/v.txt"), "char", 0)));
        assertEquals(List.of("data.corpus[0]", "data.validation[1]", "data.validation[2]", "data.validation[3]"),
                refused.errors().stream().map(Problem.FieldProblem::field).toList());
        assertTrue(refused.errors().get(1).message().startsWith("no uploaded corpus " + unknown),
                refused.errors().get(1).message());
        assertTrue(refused.getMessage().contains("data.validation[3]: corpora are read from bucket"),
                refused::getMessage);
    }

    private static ResolvedSpec.Data data(List<String> corpus) {
        return new ResolvedSpec.Data(corpus, List.of(), "char", 0.1);
    }

    @Test
    void theFileSystemRootCannotBeAllowed() {
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> new CorpusSettings(1024, true, List.of("/"), 2));
        assertTrue(refused.getMessage().contains("slope.corpus.local-roots"), refused::getMessage);
    }
}
