package io.slope.catalogue;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * The runs of the catalogue and what hangs off them (events, stage results, progress, checkpoints, evaluations,
 * artifacts, datasets): every write the API and the pipeline make, and the reads they decide on. The pipeline's writes
 * are idempotent, because an activity may run more than once: inserts are {@code ON CONFLICT DO NOTHING} (or update to
 * the same value), and the latest checkpoint moves only forward.
 */
public final class RunCatalogue {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String RUN_COLUMNS = "id, owner, name, spec::text, workflow_id, status, stage, error, "
            + "total_steps, steps_done, latest_step, latest_attempt, latest_checkpoint_key, dataset_id, created_at, "
            + "started_at, finished_at, updated_at, ranks, chunk_steps, keep_last_checkpoints";

    private final Database db;

    public RunCatalogue(Database db) {
        this.db = db;
    }

    public Database database() {
        return db;
    }

    /** One step of the loss curve. */
    public record ProgressSample(int step, double loss, double lr, long tokens, double tokensPerSecond) {}

    /** A check in the transaction that stores a run or requeues it (the API's quotas): it refuses by throwing. */
    public interface Admission {
        Admission NONE = c -> { };

        void admit(Connection c) throws SQLException;
    }

    /** Registers a run (QUEUED) with the service's default options. Idempotent on the id. */
    public void createRun(UUID id, String owner, ResolvedSpec resolvedSpec, String workflowId) throws SQLException {
        createRun(id, owner, resolvedSpec, workflowId, ChosenOptions.NONE, Admission.NONE);
    }

    /** Registers a run (QUEUED) with the options it chose, once {@code admission} lets it. Idempotent on the id. */
    public void createRun(UUID id, String owner, ResolvedSpec resolvedSpec, String workflowId, ChosenOptions options,
            Admission admission) throws SQLException {
        db.transaction(c -> {
            admission.admit(c);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO runs (id, owner, name, spec, workflow_id, "
                    + "total_steps, ranks, chunk_steps, keep_last_checkpoints) "
                    + "VALUES (?, ?, ?, ?::jsonb, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")) {
                ps.setObject(1, id);
                ps.setString(2, owner);
                ps.setString(3, resolvedSpec.name());
                ps.setString(4, RunSpecCodec.toJson(resolvedSpec));
                ps.setString(5, workflowId);
                ps.setInt(6, resolvedSpec.training().steps());
                ps.setObject(7, options.ranks(), Types.INTEGER);
                ps.setObject(8, options.chunkSteps(), Types.INTEGER);
                ps.setObject(9, options.keepLastCheckpoints(), Types.INTEGER);
                return ps.executeUpdate();
            }
        });
    }

    public Optional<RunRow> run(UUID id) throws SQLException {
        return db.query("SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ?", RunCatalogue::runRow, id).stream()
                .findFirst();
    }

    /** Where a page of runs starts: after the run created at {@code createdAt} with id {@code id}. */
    public record PageStart(Instant createdAt, UUID id) {}

    /** Newest first; {@code owner} null for every owner (admins), {@code status} null for every status. */
    public List<RunRow> page(String owner, RunStatus status, PageStart after, int limit) throws SQLException {
        StringBuilder sql = new StringBuilder("SELECT " + RUN_COLUMNS + " FROM runs WHERE true");
        List<Object> args = new ArrayList<>();
        if (owner != null) {
            sql.append(" AND owner = ?");
            args.add(owner);
        }
        if (status != null) {
            sql.append(" AND status = ?");
            args.add(status.name());
        }
        if (after != null) {
            sql.append(" AND (created_at, id) < (?, ?)");
            args.add(Timestamp.from(after.createdAt()));
            args.add(after.id());
        }
        sql.append(" ORDER BY created_at DESC, id DESC LIMIT ?");
        args.add(limit);
        return db.query(sql.toString(), RunCatalogue::runRow, args.toArray());
    }

    /** The runs Postgres lists as QUEUED, RUNNING or PAUSED, oldest first: what the reconciler looks at. */
    public List<RunRow> unfinishedRuns() throws SQLException {
        return db.query("SELECT " + RUN_COLUMNS + " FROM runs WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED') "
                + "ORDER BY created_at, id", RunCatalogue::runRow);
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
                    insertEvent(c, runId, "INFO", stage.wireName(), "stage " + stage.wireName() + ": " + status);
                }
            }
            return null;
        });
    }

    /**
     * A finished run goes back to QUEUED for a retry from {@code fromStage}, once {@code admission} lets it, with its
     * error cleared and an event saying from where.
     *
     * @return false, with nothing written, when the run is not finished (a concurrent retry won, or it never ended)
     */
    public boolean requeue(UUID runId, Stage fromStage, Admission admission) throws SQLException {
        return updateWithEvent(admission, "UPDATE runs SET status = 'QUEUED', error = NULL, finished_at = NULL, "
                + "updated_at = now() WHERE id = ? AND finished_at IS NOT NULL", ps -> ps.setObject(1, runId), runId,
                "INFO", fromStage.wireName(), "retry from stage " + fromStage.wireName() + " requested");
    }

    /**
     * Puts a run that a retry requeued back as it was ({@code before}), when its workflow could not be started; with
     * a WARN event. False when the run has moved on meanwhile (its workflow did start after all).
     */
    public boolean restoreFinished(RunRow before, String why) throws SQLException {
        return updateWithEvent(Admission.NONE, "UPDATE runs SET status = ?, error = ?, finished_at = ?, updated_at = "
                + "now() WHERE id = ? AND status = 'QUEUED' AND finished_at IS NULL", ps -> {
                    ps.setString(1, before.status().name());
                    ps.setString(2, before.error());
                    ps.setTimestamp(3, Timestamp.from(before.finishedAt()));
                    ps.setObject(4, before.id());
                }, before.id(), "WARN", before.stage(), why);
    }

    /** Stores the ranks a live run's workflow has accepted, with an event saying so; false when the run is gone. */
    public boolean updateRanks(UUID runId, int ranks) throws SQLException {
        return updateWithEvent(Admission.NONE, "UPDATE runs SET ranks = ?, updated_at = now() WHERE id = ?", ps -> {
            ps.setInt(1, ranks);
            ps.setObject(2, runId);
        }, runId, "INFO", null, "ranks set to " + ranks + " for the chunks that start from now on");
    }

    private interface Parameters {
        void set(PreparedStatement statement) throws SQLException;
    }

    /**
     * One transaction: {@code admission}, then {@code update} of the run's row (its parameters set by
     * {@code parameters}) and, when it changed that row, an event at {@code level}; false, and nothing written, when
     * it changed none.
     */
    private boolean updateWithEvent(Admission admission, String update, Parameters parameters, UUID runId,
            String level, String stage, String message) throws SQLException {
        return db.transaction(c -> {
            admission.admit(c);
            try (PreparedStatement ps = c.prepareStatement(update)) {
                parameters.set(ps);
                if (ps.executeUpdate() != 1) {
                    return false;
                }
            }
            insertEvent(c, runId, level, stage, message);
            return true;
        });
    }

    /** What deleting a run does outside Postgres (its objects), while the run's row is locked. */
    public interface Cleanup {
        void run() throws IOException;
    }

    /**
     * Deletes a finished run: locks its row, runs {@code cleanup}, then deletes the row (its samples, checkpoints,
     * artifacts, events go with it: ON DELETE CASCADE), in one transaction. The lock holds a concurrent retry's
     * {@link #requeue} until the row is gone, so no run is started again whose objects were removed.
     *
     * @return false, with nothing cleaned up, when the run is gone or no longer finished (a retry won)
     */
    public boolean deleteFinished(UUID runId, Cleanup cleanup) throws SQLException, IOException {
        try {
            return db.transaction(c -> {
                try (PreparedStatement lock = c.prepareStatement("SELECT 1 FROM runs WHERE id = ? AND finished_at "
                        + "IS NOT NULL FOR UPDATE")) {
                    lock.setObject(1, runId);
                    try (ResultSet rs = lock.executeQuery()) {
                        if (!rs.next()) {
                            return false;
                        }
                    }
                }
                try {
                    cleanup.run();
                } catch (IOException e) {
                    throw new UncheckedIOException(e); // rolls the transaction back; unwrapped below
                }
                try (PreparedStatement delete = c.prepareStatement("DELETE FROM runs WHERE id = ?")) {
                    delete.setObject(1, runId);
                    delete.executeUpdate();
                }
                return true;
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
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
            insertEvent(c, runId, level, stage == null ? null : stage.wireName(), message);
            return null;
        });
    }

    public List<String> events(UUID runId) throws SQLException {
        return db.query("SELECT level || ' ' || message FROM run_events WHERE run_id = ? ORDER BY id",
                rs -> rs.getString(1), runId);
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

    /** A file of a committed checkpoint, as its manifest lists it. */
    public record CheckpointShard(String file, long bytes, String sha256) {}

    /**
     * Records a committed checkpoint and makes it the run's latest unless a newer one already is (the conditional
     * UPDATE that a stale attempt cannot win).
     *
     * @return whether it became the latest
     */
    public boolean recordCheckpoint(UUID runId, long step, String prefix, String writerAttempt,
            String manifestSha256, List<CheckpointShard> shards, Double valLoss) throws SQLException {
        return db.transaction(c -> {
            long bytes = shards.stream().mapToLong(CheckpointShard::bytes).sum();
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

    /** A prepared dataset: its content address, where its shards are, and its manifest (stored as JSON). */
    public record Dataset(String id, String prefix, String corpusSha256, String tokenizer, int vocabSize,
            double valFraction, long trainTokens, long validationTokens, Object manifest) {}

    /** Registers a prepared dataset (content addressed, so registering it again changes nothing). */
    public void recordDataset(Dataset dataset) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO datasets (id, prefix, corpus_sha256, "
                    + "tokenizer, vocab_size, val_fraction, train_tokens, validation_tokens, manifest) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb) ON CONFLICT (id) DO NOTHING")) {
                ps.setString(1, dataset.id());
                ps.setString(2, dataset.prefix());
                ps.setString(3, dataset.corpusSha256());
                ps.setString(4, dataset.tokenizer());
                ps.setInt(5, dataset.vocabSize());
                ps.setDouble(6, dataset.valFraction());
                ps.setLong(7, dataset.trainTokens());
                ps.setLong(8, dataset.validationTokens());
                ps.setString(9, json(dataset.manifest()));
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
        return db.query("SELECT path, kind, object_key, bytes, sha256 FROM artifacts WHERE run_id = ? ORDER BY path",
                rs -> new Artifact(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4),
                        rs.getString(5)), runId);
    }

    /**
     * A committed checkpoint's row: what retention decides on and the run page lists; {@code valLoss} null while no
     * validation loss is recorded at its step.
     */
    public record CheckpointRow(long step, String prefix, Double valLoss, long bytes, boolean pinned,
            Instant committedAt) {}

    /** The run's committed checkpoints, oldest first. */
    public List<CheckpointRow> checkpoints(UUID runId) throws SQLException {
        return db.query("SELECT step, object_prefix, val_loss, bytes, pinned, committed_at FROM checkpoints "
                + "WHERE run_id = ? ORDER BY step", rs -> new CheckpointRow(rs.getLong(1), rs.getString(2),
                rs.getObject(3, Double.class), rs.getLong(4), rs.getBoolean(5), instant(rs, 6)), runId);
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

    private static void insertEvent(Connection c, UUID runId, String level, String stage, String message)
            throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO run_events (run_id, level, stage, message) "
                + "VALUES (?, ?, ?, ?)")) {
            ps.setObject(1, runId);
            ps.setString(2, level);
            ps.setString(3, stage);
            ps.setString(4, message);
            ps.executeUpdate();
        }
    }

    private static RunRow runRow(ResultSet rs) throws SQLException {
        return new RunRow(rs.getObject(1, UUID.class), rs.getString(2), rs.getString(3), rs.getString(4),
                rs.getString(5), RunStatus.valueOf(rs.getString(6)), rs.getString(7), rs.getString(8), rs.getInt(9),
                rs.getInt(10), rs.getLong(11), rs.getString(12), rs.getString(13), rs.getString(14), instant(rs, 15),
                instant(rs, 16), instant(rs, 17), instant(rs, 18), new ChosenOptions(rs.getObject(19, Integer.class),
                rs.getObject(20, Integer.class), rs.getObject(21, Integer.class)));
    }

    private static Instant instant(ResultSet rs, int column) throws SQLException {
        Timestamp t = rs.getTimestamp(column);
        return t == null ? null : t.toInstant();
    }

    static String json(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("records always serialise", e);
        }
    }
}
