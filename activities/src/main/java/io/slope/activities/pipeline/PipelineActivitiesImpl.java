package io.slope.activities.pipeline;

import io.slope.activities.checkpoint.CheckpointGc;
import io.slope.activities.checkpoint.RetentionPolicy;
import io.slope.activities.checkpoint.S3CheckpointStore;
import io.slope.activities.data.CorpusSource;
import io.slope.activities.data.DatasetStore;
import io.slope.catalogue.RunCatalogue;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.DatasetManifest;
import io.slope.engine.data.InvalidCorpusException;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.storage.ObjectStore;
import io.slope.workflows.run.PipelineActivities;
import io.temporal.failure.ApplicationFailure;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/** The pipeline queue's activities: thin wrappers over the catalogue, the dataset store and checkpoint GC. */
public final class PipelineActivitiesImpl implements PipelineActivities {
    private final RunCatalogue catalogue;
    private final ObjectStore objects;
    private final DatasetStore datasets;
    private final CorpusSource corpora;
    private final Path scratch;

    public PipelineActivitiesImpl(RunCatalogue catalogue, ObjectStore objects, DatasetStore datasets,
            CorpusSource corpora, Path scratch) {
        this.catalogue = catalogue;
        this.objects = objects;
        this.datasets = datasets;
        this.corpora = corpora;
        this.scratch = scratch;
    }

    /**
     * Reads {@code data.corpus} and, when the spec gives held-out files, {@code data.validation} (both as
     * {@link CorpusSource} reads them), prepares their dataset into the store unless it is there already, and records
     * it in the catalogue. A corpus that cannot be read fails the run at once, naming the field and entry.
     */
    @Override
    public StageResult prepareData(String runId, ResolvedSpec spec) {
        ResolvedSpec.Data data = spec.data();
        Path work = scratch.resolve("prepare-" + runId + "-" + System.nanoTime());
        try {
            Corpus corpus = read("data.corpus", data.corpus(), work);
            Corpus heldOut = null;
            if (data.heldOutFiles()) {
                try {
                    corpora.requireDisjoint(data.corpus(), data.validation());
                } catch (InvalidCorpusException e) {
                    throw invalidCorpus("data.validation", e);
                }
                heldOut = read("data.validation", data.validation(), work);
            }
            DatasetStore.Prepared prepared;
            try {
                prepared = heldOut == null
                        ? datasets.prepare(corpus, data.tokenizer(), data.valFraction(), work)
                        : datasets.prepare(corpus, heldOut, data.tokenizer(), work);
            } catch (InvalidCorpusException | IllegalArgumentException e) {
                // With held-out files the one such failure is a held-out file also read as training text (both
                // lists hold text, or reading them failed above).
                throw ApplicationFailure.newNonRetryableFailure((heldOut == null ? "data: " : "data.validation: ")
                        + e.getMessage(), "InvalidCorpus");
            }
            DatasetManifest manifest = prepared.manifest();
            catalogue.recordDataset(new RunCatalogue.Dataset(prepared.id(), prepared.prefix(),
                    manifest.source().corpusSha256(), manifest.tokenizer(), manifest.vocabSize(),
                    manifest.valFraction(), manifest.trainTokens(), manifest.validationTokens(), manifest));
            catalogue.event(UUID.fromString(runId), "INFO", Stage.PREPARE_DATA, (prepared.created() ? "prepared"
                    : "reused") + " dataset " + prepared.id() + ": " + manifest.trainTokens() + " train / "
                    + manifest.validationTokens() + " held-out tokens, vocabulary " + manifest.vocabSize() + " ("
                    + corpus.description()
                    + (heldOut == null ? "" : "; held out: " + heldOut.description()) + ")");
            return StageResult.dataset(prepared.id(), Map.of(
                    "trainTokens", (double) manifest.trainTokens(),
                    "validationTokens", (double) manifest.validationTokens(),
                    "vocabSize", (double) manifest.vocabSize()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (SQLException e) {
            throw new IllegalStateException("catalogue: " + e.getMessage(), e);
        } finally {
            deleteQuietly(work);
        }
    }

    /** The entries of one spec field; a failure names the field and fails the run without retrying. */
    private Corpus read(String field, List<String> entries, Path work) throws IOException {
        try {
            return corpora.read(field, entries, work);
        } catch (InvalidCorpusException e) {
            throw invalidCorpus(field, e);
        }
    }

    private static ApplicationFailure invalidCorpus(String field, InvalidCorpusException e) {
        return ApplicationFailure.newNonRetryableFailure(field + ": " + e.getMessage(), "InvalidCorpus");
    }

    @Override
    public void markStage(String runId, Stage stage, String status) {
        sql(() -> catalogue.markStage(UUID.fromString(runId), stage, status));
    }

    @Override
    public void saveStageResult(String runId, StageResult result) {
        sql(() -> catalogue.saveStageResult(UUID.fromString(runId), result));
    }

    @Override
    public void collectGarbage(String runId, int keepLast) {
        UUID id = UUID.fromString(runId);
        try {
            List<Long> deleted = new CheckpointGc(catalogue).collect(id,
                    new S3CheckpointStore(objects, runId, scratch.resolve("gc-" + runId)),
                    new RetentionPolicy(keepLast, 1, 0));
            if (!deleted.isEmpty()) {
                catalogue.event(id, "INFO", null, "retention deleted checkpoints " + deleted);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (SQLException e) {
            throw new IllegalStateException("catalogue: " + e.getMessage(), e);
        }
    }

    @Override
    public StageResult finalizeRun(String runId, Map<Stage, StageResult> results) {
        UUID id = UUID.fromString(runId);
        String prefix = ExportManifest.prefix(runId);
        try {
            byte[] json = objects.getBytes(prefix + ExportManifest.NAME).orElseThrow(() ->
                    ApplicationFailure.newNonRetryableFailure("the export stage left no " + prefix
                            + ExportManifest.NAME + "; retry from stage export", "MissingExport"));
            ExportManifest manifest = ExportManifest.parse(json);
            List<RunCatalogue.Artifact> artifacts = new ArrayList<>();
            long bytes = 0;
            for (ExportManifest.File file : manifest.files()) {
                String key = prefix + file.path();
                Path local = Files.createDirectories(scratch).resolve("verify-" + runId + "-" + System.nanoTime());
                try {
                    if (!objects.download(key, local)) {
                        throw ApplicationFailure.newNonRetryableFailure("exported file " + key + " is missing; "
                                + "retry from stage export", "MissingExport");
                    }
                    String sha256 = sha256(local);
                    if (!sha256.equals(file.sha256()) || Files.size(local) != file.bytes()) {
                        throw ApplicationFailure.newNonRetryableFailure("exported file " + key + " has sha256 "
                                + sha256 + " (" + Files.size(local) + " bytes) but the export manifest records "
                                + file.sha256() + " (" + file.bytes() + " bytes); retry from stage export",
                                "CorruptExport");
                    }
                } finally {
                    Files.deleteIfExists(local);
                }
                artifacts.add(new RunCatalogue.Artifact(file.path(), file.kind(), key, file.bytes(), file.sha256()));
                bytes += file.bytes();
            }
            catalogue.recordArtifacts(id, artifacts);
            return StageResult.output(Stage.FINALIZE, prefix, Map.of("artifacts", (double) artifacts.size(),
                    "bytes", (double) bytes));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (SQLException e) {
            throw new IllegalStateException("catalogue: " + e.getMessage(), e);
        }
    }

    @Override
    public void finishRun(String runId, String status, String error) {
        sql(() -> catalogue.finish(UUID.fromString(runId), status, error));
    }

    /** SHA-256 of a file's content, hex. */
    public static String sha256(Path file) throws IOException {
        var digest = DurableFiles.newSha256();
        try (var in = Files.newInputStream(file)) {
            byte[] buffer = new byte[1 << 20];
            for (int n; (n = in.read(buffer)) > 0; ) {
                digest.update(buffer, 0, n);
            }
        }
        return java.util.HexFormat.of().formatHex(digest.digest());
    }

    private interface SqlAction {
        void run() throws SQLException;
    }

    private static void sql(SqlAction action) {
        try {
            action.run();
        } catch (SQLException e) {
            throw new IllegalStateException("catalogue: " + e.getMessage(), e);
        }
    }

    private static void deleteQuietly(Path dir) {
        try {
            DurableFiles.deleteRecursively(dir);
        } catch (IOException ignored) {
            // scratch space; the next run of the worker reuses nothing from it
        }
    }
}
