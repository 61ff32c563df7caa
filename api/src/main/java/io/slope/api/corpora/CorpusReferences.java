package io.slope.api.corpora;

import io.slope.api.auth.Caller;
import io.slope.api.config.CorpusSettings;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.storage.Storage;
import io.micronaut.http.HttpStatus;
import io.slope.spec.ResolvedSpec;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

/**
 * Checks a submitted spec's {@code data.corpus} and {@code data.validation} entries before anything is stored, so a
 * run never starts on a corpus the workers cannot read. An entry is {@code s3://<bucket>/corpora/<sha256>} (an upload;
 * the content hash is its id, so whoever has the content may use it), any other key of the service's bucket (admins
 * only), or, when the one-machine stack allows it ({@code slope.corpus.allow-local-paths}), an absolute path the
 * pipeline worker reads, of a file under one of {@code slope.corpus.local-roots}.
 */
@Singleton
public class CorpusReferences {
    public static final String PREFIX = "corpora/";

    private final CorpusRepository corpora;
    private final Storage storage;
    private final CorpusSettings settings;

    public CorpusReferences(CorpusRepository corpora, Storage storage, CorpusSettings settings) {
        this.corpora = corpora;
        this.storage = storage;
        this.settings = settings;
    }

    public String uri(String id) {
        return "s3://" + storage.bucket() + "/" + PREFIX + id;
    }

    /**
     * Checks every entry of {@code data.corpus} and of {@code data.validation} (held-out files, read the same way).
     *
     * @throws ProblemException a 400 naming each bad entry ({@code data.corpus[i]}, {@code data.validation[i]})
     */
    public void check(Caller caller, ResolvedSpec.Data data) throws SQLException {
        List<Problem.FieldProblem> errors = new ArrayList<>();
        addProblems(caller, "data.corpus", data.corpus(), errors);
        addProblems(caller, "data.validation", data.validation(), errors);
        if (!errors.isEmpty()) {
            throw new ProblemException(HttpStatus.BAD_REQUEST, "invalid-spec", String.join("; ", errors.stream()
                    .map(e -> e.field() + ": " + e.message()).toList()), errors);
        }
    }

    private void addProblems(Caller caller, String field, List<String> entries, List<Problem.FieldProblem> errors)
            throws SQLException {
        for (int i = 0; i < entries.size(); i++) {
            String problem = problem(caller, entries.get(i));
            if (problem != null) {
                errors.add(new Problem.FieldProblem(field + "[" + i + "]", problem));
            }
        }
    }

    private String problem(Caller caller, String entry) throws SQLException {
        String bucketPrefix = "s3://" + storage.bucket() + "/";
        if (entry.startsWith(bucketPrefix)) {
            String key = entry.substring(bucketPrefix.length());
            if (key.startsWith(PREFIX)) {
                String id = key.substring(PREFIX.length());
                if (!id.matches("[0-9a-f]{64}") || corpora.find(id).isEmpty()) {
                    return "no uploaded corpus " + entry + "; upload the file with POST /api/v1/datasets and use "
                            + "the uri it returns";
                }
                return null;
            }
            return caller.admin() ? null : "only uploaded corpora (" + bucketPrefix + PREFIX + "<id>) may be used; "
                    + "upload the file with POST /api/v1/datasets";
        }
        if (entry.startsWith("s3://")) {
            return "corpora are read from bucket " + storage.bucket() + " only; upload the file with "
                    + "POST /api/v1/datasets and use the uri it returns";
        }
        if (settings.allowLocalPaths() && entry.startsWith("/")) {
            return localProblem(entry);
        }
        return "a local path (" + entry + ") cannot be read by the service's workers; upload the file with "
                + "POST /api/v1/datasets (`slope submit` does this for local files) and use the uri it returns";
    }

    /** A local path is a file under an allowed root once its links and {@code ..} are resolved. */
    private String localProblem(String entry) {
        Path file;
        try {
            file = Path.of(entry).toRealPath();
        } catch (IOException | InvalidPathException e) {
            return "the local path " + entry + " cannot be read (" + e.getMessage() + ")";
        }
        List<Path> roots = new ArrayList<>();
        for (String root : settings.localRoots()) {
            try {
                roots.add(Path.of(root).toRealPath());
            } catch (IOException e) {
                // a root that does not exist holds no corpus
            }
        }
        if (roots.stream().noneMatch(file::startsWith)) {
            return "the local path " + entry + " is outside the directories corpora are read from (" + roots
                    + ", SLOPE_CORPUS_LOCAL_ROOTS): move the file there, or upload it with POST /api/v1/datasets";
        }
        return Files.isRegularFile(file) ? null : "the local path " + entry + " is not a file";
    }
}
