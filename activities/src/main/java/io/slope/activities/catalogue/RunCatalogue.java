package io.slope.activities.catalogue;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.engine.checkpoint.CheckpointManifest;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.workflows.run.RunOptions;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * The run catalogue's writes and reads that the pipeline makes. Every write is idempotent, because an activity may run
 * more than once: inserts are {@code ON CONFLICT DO NOTHING} (or update to the same value), and the latest checkpoint
 * moves only forward.
 */
public final class RunCatalogue {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Database db;

    public RunCatalogue(Database db) {
        this.db = db;
    }

    public Database database() {
        return db;
    }

    /** One step of the loss curve. */
    public record ProgressSample(int step, double loss, double lr, long tokens, double tokensPerSecond) {}

    /** A run's row, as the pipeline reads it. */
    public record RunRow(UUID id, String owner, String status, String stage, String error, int stepsDone,
            long latestStep, String latestAttempt, String latestCheckpointKey, String datasetId) {}

    /** Registers a run (QUEUED); what the API does on submit. Idempotent on the id. */
    public void createRun(UUID id, String owner, RunSpec resolvedSpec, String workflowId) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO runs (id, owner, name, spec, workflow_id, "
                    + "total_steps) VALUES (?, ?, ?, ?::jsonb, ?, ?) ON CONFLICT (id) DO NOTHING")) {
                ps.setObject(1, id);
                ps.setString(2, owner);
                ps.setString(3, resolvedSpec.name());
                ps.setString(4, RunSpecCodec.toJson(resolvedSpec));
                ps.setString(5, workflowId);
                ps.setInt(6, resolvedSpec.training().steps());
                return ps.executeUpdate();
            }
        });
    }

    public Optional<RunRow> run(UUID id) throws SQLException {
        return db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT id, owner, status, stage, error, steps_done, "
                    + "latest_step, latest_attempt, latest_checkpoint_key, dataset_id FROM runs WHERE id = ?")) {
                ps.setObject(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        return Optional.empty();
                    }
                    return Optional.of(new RunRow(rs.getObject(1, UUID.class), rs.getString(2), rs.getString(3),
                            rs.getString(4), rs.getString(5), rs.getInt(6), rs.getLong(7), rs.getString(8),
                            rs.getString(9), rs.getString(10)));
                }
            }
        });
    }

    /**
     * A run that Postgres lists as QUEUED, RUNNING or PAUSED: what the reconciler looks at. {@code ranks},
     * {@code chunkSteps} and {@code keepLastCheckpoints} are the options stored with it, null where it has none.
     */
    public record UnfinishedRun(UUID id, String owner, String workflowId, String status, String specJson,
            Integer ranks, Integer chunkSteps, Integer keepLastCheckpoints) {
        /** {@code defaults} with the options stored with this run in place of them. */
        public RunOptions options(RunOptions defaults) {
            return defaults.overriddenBy(chunkSteps, keepLastCheckpoints, ranks);
        }
    }

    public List<UnfinishedRun> unfinishedRuns() throws SQLException {
        return db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT id, owner, workflow_id, status, spec::text, "
                    + "ranks, chunk_steps, keep_last_checkpoints FROM runs "
                    + "WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED') ORDER BY created_at, id")) {
                List<UnfinishedRun> runs = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        runs.add(new UnfinishedRun(rs.getObject(1, UUID.class), rs.getString(2), rs.getString(3),
                                rs.getString(4), rs.getString(5), rs.getObject(6, Integer.class),
                                rs.getObject(7, Integer.class), rs.getObject(8, Integer.class)));
                    }
                }
                return runs;
            }
        });
    }

    /** A stage begins: the run is RUNNING in that stage (or PAUSED), with an event saying so. */
    public void markStage(UUID runId, Stage stage, String status) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET stage = ?, status = ?, "
                    + "started_at = coalesce(started_at, now()), updated_at = now() WHERE id = ? "
                    + "AND finished_at IS NULL AND (stage IS DISTINCT FROM ? OR status <> ?)")) {
                ps.setString(1, stage.wireName());
                ps.setString(2, status);
                ps.setObject(3, runId);
                ps.setString(4, stage.wireName());
                ps.setString(5, status);
                if (ps.executeUpdate() == 1) {
                    insertEvent(c, runId, "INFO", stage, "stage " + stage.wireName() + ": " + status);
                }
            }
            return null;
        });
    }

    /** A finished run is started again from a stage (retry-from-stage): QUEUED, no end, no error. */
    public void requeue(UUID runId, Stage fromStage) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET status = 'QUEUED', error = NULL, "
                    + "finished_at = NULL, updated_at = now() WHERE id = ?")) {
                ps.setObject(1, runId);
                ps.executeUpdate();
            }
            insertEvent(c, runId, "INFO", fromStage, "retry from stage " + fromStage.wireName());
            return null;
        });
    }

    /** Ends the run: SUCCEEDED, FAILED (with the error) or CANCELLED. A finished run stays as it finished. */
    public void finish(UUID runId, String status, String error) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET status = ?, error = ?, "
                    + "finished_at = now(), updated_at = now() WHERE id = ? AND finished_at IS NULL")) {
                ps.setString(1, status);
                ps.setString(2, error);
                ps.setObject(3, runId);
                if (ps.executeUpdate() == 1) {
                    insertEvent(c, runId, status.equals("FAILED") ? "ERROR" : "INFO", null,
                            "run " + status + (error == null ? "" : ": " + error));
                }
            }
            return null;
        });
    }

    public void event(UUID runId, String level, Stage stage, String message) throws SQLException {
        db.transaction(c -> {
            insertEvent(c, runId, level, stage, message);
            return null;
        });
    }

    public List<String> events(UUID runId) throws SQLException {
        return db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT level || ' ' || message FROM run_events "
                    + "WHERE run_id = ? ORDER BY id")) {
                ps.setObject(1, runId);
                List<String> events = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        events.add(rs.getString(1));
                    }
                }
                return events;
            }
        });
    }

    public void saveStageResult(UUID runId, StageResult result) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO stage_results (run_id, stage, result) "
                    + "VALUES (?, ?, ?::jsonb) ON CONFLICT (run_id, stage) DO UPDATE SET result = EXCLUDED.result, "
                    + "completed_at = now()")) {
                ps.setObject(1, runId);
                ps.setString(2, result.stage().wireName());
                ps.setString(3, json(result));
                ps.executeUpdate();
            }
            if (result.datasetId() != null) {
                try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET dataset_id = ? WHERE id = ?")) {
                    ps.setString(1, result.datasetId());
                    ps.setObject(2, runId);
                    ps.executeUpdate();
                }
            }
            return null;
        });
    }

    /** The stage results stored so far: what a retry from a later stage passes to the new workflow run. */
    public Map<Stage, StageResult> stageResults(UUID runId) throws SQLException {
        return db.transaction(c -> {
            Map<Stage, StageResult> results = new EnumMap<>(Stage.class);
            try (PreparedStatement ps = c.prepareStatement("SELECT result::text FROM stage_results WHERE run_id = ?")) {
                ps.setObject(1, runId);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        StageResult result = JSON.readValue(rs.getString(1), StageResult.class);
                        results.put(result.stage(), result);
                    }
                }
            } catch (JsonProcessingException e) {
                throw new SQLException("stage_results of run " + runId + " holds invalid JSON: " + e.getMessage(), e);
            }
            return results;
        });
    }

    /**
     * Records a committed checkpoint and makes it the run's latest unless a newer one already is (the conditional
     * UPDATE that a stale attempt cannot win).
     *
     * @return whether it became the latest
     */
    public boolean recordCheckpoint(UUID runId, long step, String prefix, String writerAttempt,
            String manifestSha256, CheckpointManifest manifest, Double valLoss) throws SQLException {
        return db.transaction(c -> {
            long bytes = manifest.shards().stream().mapToLong(CheckpointManifest.Shard::bytes).sum();
            List<Map<String, Object>> shards = manifest.shards().stream().map(s -> Map.<String, Object>of(
                    "file", s.file(), "bytes", s.bytes(), "sha256", s.sha256())).toList();
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO checkpoints (run_id, step, object_prefix, "
                    + "writer_attempt, manifest_sha256, shards, bytes, val_loss) VALUES (?, ?, ?, ?, ?, ?::jsonb, ?, ?)"
                    + " ON CONFLICT (run_id, step) DO NOTHING")) {
                ps.setObject(1, runId);
                ps.setLong(2, step);
                ps.setString(3, prefix);
                ps.setString(4, writerAttempt);
                ps.setString(5, manifestSha256);
                ps.setString(6, json(shards));
                ps.setLong(7, bytes);
                if (valLoss == null) {
                    ps.setNull(8, java.sql.Types.DOUBLE);
                } else {
                    ps.setDouble(8, valLoss);
                }
                ps.executeUpdate();
            }
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET latest_step = ?, latest_attempt = ?, "
                    + "latest_checkpoint_key = ?, updated_at = now() WHERE id = ? AND latest_step < ?")) {
                ps.setLong(1, step);
                ps.setString(2, writerAttempt);
                ps.setString(3, prefix);
                ps.setObject(4, runId);
                ps.setLong(5, step);
                return ps.executeUpdate() == 1;
            }
        });
    }

    /** Appends steps of the loss curve; steps already recorded are left as they are. */
    public void recordProgress(UUID runId, List<ProgressSample> samples) throws SQLException {
        if (samples.isEmpty()) {
            return;
        }
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO progress_samples (run_id, step, loss, lr, "
                    + "tokens, tokens_per_second) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")) {
                for (ProgressSample s : samples) {
                    ps.setObject(1, runId);
                    ps.setInt(2, s.step());
                    ps.setDouble(3, s.loss());
                    ps.setDouble(4, s.lr());
                    ps.setLong(5, s.tokens());
                    ps.setDouble(6, s.tokensPerSecond());
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            int last = samples.stream().mapToInt(ProgressSample::step).max().orElseThrow();
            try (PreparedStatement ps = c.prepareStatement("UPDATE runs SET steps_done = greatest(steps_done, ?), "
                    + "updated_at = now() WHERE id = ?")) {
                ps.setInt(1, last);
                ps.setObject(2, runId);
                ps.executeUpdate();
            }
            return null;
        });
    }

    public void recordEval(UUID runId, int step, String name, double value) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO eval_results (run_id, step, name, value) "
                    + "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")) {
                ps.setObject(1, runId);
                ps.setInt(2, step);
                ps.setString(3, name);
                ps.setDouble(4, value);
                ps.executeUpdate();
            }
            try (PreparedStatement ps = c.prepareStatement("UPDATE checkpoints SET val_loss = ? WHERE run_id = ? "
                    + "AND step = ? AND val_loss IS NULL AND ? IN ('val_loss', 'val_loss_sparse')")) {
                ps.setDouble(1, value);
                ps.setObject(2, runId);
                ps.setLong(3, step);
                ps.setString(4, name);
                ps.executeUpdate();
            }
            return null;
        });
    }

    /** Registers a prepared dataset (content addressed, so registering it again changes nothing). */
    public void recordDataset(String id, String prefix, io.slope.engine.data.DatasetManifest manifest)
            throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO datasets (id, prefix, corpus_sha256, "
                    + "tokenizer, vocab_size, val_fraction, train_tokens, validation_tokens, manifest) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb) ON CONFLICT (id) DO NOTHING")) {
                ps.setString(1, id);
                ps.setString(2, prefix);
                ps.setString(3, manifest.source().corpusSha256());
                ps.setString(4, manifest.tokenizer());
                ps.setInt(5, manifest.vocabSize());
                ps.setDouble(6, manifest.valFraction());
                ps.setLong(7, manifest.trainTokens());
                ps.setLong(8, manifest.validationTokens());
                ps.setString(9, json(manifest));
                return ps.executeUpdate();
            }
        });
    }

    /** One exported file. */
    public record Artifact(String path, String kind, String objectKey, long bytes, String sha256) {}

    public void recordArtifacts(UUID runId, List<Artifact> artifacts) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO artifacts (run_id, path, kind, object_key, "
                    + "bytes, sha256) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, path) DO UPDATE SET "
                    + "object_key = EXCLUDED.object_key, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256")) {
                for (Artifact a : artifacts) {
                    ps.setObject(1, runId);
                    ps.setString(2, a.path());
                    ps.setString(3, a.kind());
                    ps.setString(4, a.objectKey());
                    ps.setLong(5, a.bytes());
                    ps.setString(6, a.sha256());
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            return null;
        });
    }

    public List<Artifact> artifacts(UUID runId) throws SQLException {
        return db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT path, kind, object_key, bytes, sha256 FROM "
                    + "artifacts WHERE run_id = ? ORDER BY path")) {
                ps.setObject(1, runId);
                List<Artifact> list = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        list.add(new Artifact(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4),
                                rs.getString(5)));
                    }
                }
                return list;
            }
        });
    }

    /** A committed checkpoint's row: what retention decides on. */
    public record CheckpointRow(long step, String prefix, Double valLoss, boolean pinned) {}

    public List<CheckpointRow> checkpoints(UUID runId) throws SQLException {
        return db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT step, object_prefix, val_loss, pinned FROM "
                    + "checkpoints WHERE run_id = ? ORDER BY step")) {
                ps.setObject(1, runId);
                List<CheckpointRow> rows = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        double v = rs.getDouble(3);
                        Double valLoss = rs.wasNull() ? null : v;
                        rows.add(new CheckpointRow(rs.getLong(1), rs.getString(2), valLoss, rs.getBoolean(4)));
                    }
                }
                return rows;
            }
        });
    }

    public void deleteCheckpointRow(UUID runId, long step) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM checkpoints WHERE run_id = ? AND step = ?")) {
                ps.setObject(1, runId);
                ps.setLong(2, step);
                return ps.executeUpdate();
            }
        });
    }

    private static void insertEvent(java.sql.Connection c, UUID runId, String level, Stage stage, String message)
            throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO run_events (run_id, level, stage, message) "
                + "VALUES (?, ?, ?, ?)")) {
            ps.setObject(1, runId);
            ps.setString(2, level);
            ps.setString(3, stage == null ? null : stage.wireName());
            ps.setString(4, message);
            ps.executeUpdate();
        }
    }

    static String json(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("records always serialise", e);
        }
    }
}
