package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.engine.data.Corpus;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code slope submit FILE}: sends a run spec to the API. Local corpus files and folders named in {@code data.corpus}
 * and {@code data.validation} (relative to the spec's folder, as for {@code slope train}) are uploaded first and
 * replaced by the uris the API returns; {@code s3://} entries go as they are. {@code --ranks}, {@code --chunk-steps} and
 * {@code --keep-last-checkpoints} go as the run's {@code options}. Prints the run's id (and follows it with
 * {@code --follow}), and on stderr a {@code cuda} run's estimated peak GPU memory.
 */
@Command(name = "submit", mixinStandardHelpOptions = true, description = "Submit a run spec to the slope API.")
public final class SubmitCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Mixin
    ClientOptions options;

    @Parameters(paramLabel = "FILE", description = "the run spec (JSON, docs/spec.md)")
    Path specFile;

    @Option(names = "--follow", description = "then follow the run to its end, like `slope follow`")
    boolean follow;

    @Option(names = "--ranks", paramLabel = "N", description = "data-parallel ranks (GPU workers) training each "
            + "chunk together, 1 to 64, dividing training.gradAccum (default: the service's, 1)")
    Integer ranks;

    @Option(names = "--chunk-steps", paramLabel = "N", description = "optimizer steps per training chunk at most, "
            + "each ending on a committed checkpoint (default: the service's)")
    Integer chunkSteps;

    @Option(names = "--keep-last-checkpoints", paramLabel = "N", description = "committed checkpoints kept besides "
            + "the best and pinned ones (default: the service's)")
    Integer keepLastCheckpoints;

    @Override
    public Integer call() throws IOException {
        ApiClient api = options.client();
        JsonNode tree = JSON.readTree(Files.readString(specFile));
        if (tree instanceof ObjectNode spec) {
            Path folder = specFile.toAbsolutePath().getParent();
            for (String field : List.of("corpus", "validation")) {
                if (spec.path("data").path(field) instanceof ArrayNode entries) {
                    ((ObjectNode) spec.get("data")).set(field, uploaded(api, "data." + field, entries, folder));
                }
            }
        }
        if (tree instanceof ObjectNode spec && (ranks != null || chunkSteps != null || keepLastCheckpoints != null)) {
            // The run options go beside the spec's fields (the API checks them against the spec); the flags win
            // over any the file has.
            ObjectNode runOptions = spec.path("options") instanceof ObjectNode given ? given
                    : spec.putObject("options");
            putIfSet(runOptions, "ranks", ranks);
            putIfSet(runOptions, "chunkSteps", chunkSteps);
            putIfSet(runOptions, "keepLastCheckpoints", keepLastCheckpoints);
        }
        JsonNode run = api.post("/api/v1/runs", JSON.writeValueAsString(tree));
        String id = run.get("id").asText();
        System.err.println("submitted run " + run.get("name").asText() + ": " + api.base() + run.at("/links/page")
                .asText());
        if (run.hasNonNull("gpuMemory")) {
            System.err.println(StatusCommand.gpuMemoryLine(run));
        }
        System.out.println(id);
        return follow ? FollowCommand.follow(api, id) : 0;
    }

    /** The entries with each local file or folder uploaded and replaced by its uris; {@code s3://} entries kept. */
    private static ArrayNode uploaded(ApiClient api, String field, ArrayNode entries, Path folder) throws IOException {
        ArrayNode uploaded = JSON.createArrayNode();
        for (JsonNode entry : entries) {
            if (!entry.isTextual() || entry.asText().startsWith("s3://")) {
                uploaded.add(entry);
                continue;
            }
            for (Path file : files(field, folder.resolve(entry.asText()).normalize())) {
                JsonNode corpusUpload = api.uploadCorpus(file);
                System.err.println("uploaded " + file + " (" + corpusUpload.get("bytes").asLong() + " bytes) as "
                        + corpusUpload.get("uri").asText());
                uploaded.add(corpusUpload.get("uri").asText());
            }
        }
        return uploaded;
    }

    private static void putIfSet(ObjectNode node, String field, Integer value) {
        if (value != null) {
            node.put(field, value);
        }
    }

    /**
     * A file as itself; a folder as the files `slope train` would read from it (the corpus reader's own choice: name
     * order, hidden and non-text files left out), each uploaded on its own.
     */
    private static List<Path> files(String field, Path path) throws IOException {
        if (!Files.exists(path)) {
            throw new IllegalArgumentException(field + ": " + path + " does not exist");
        }
        if (!Files.isDirectory(path)) {
            return List.of(path);
        }
        Corpus corpus = Corpus.read(List.of(path));
        for (Corpus.SkippedFile skipped : corpus.skippedFiles()) {
            System.err.println("not uploaded: " + skipped.path() + " (" + skipped.reason() + ")");
        }
        return corpus.files();
    }
}
