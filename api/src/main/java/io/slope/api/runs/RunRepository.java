package io.slope.api.runs;

import io.slope.api.runs.RunViews.CheckpointView;
import io.slope.api.runs.RunViews.EvalResult;
import io.slope.api.runs.RunViews.EventView;
import io.slope.api.runs.RunViews.Sample;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import javax.sql.DataSource;

/** The run catalogue's reads and the API's few writes (submit, retry, delete), in plain SQL. */
@Singleton
public class RunRepository {
    private static final String RUN_COLUMNS = "id, owner, name, spec::text, workflow_id, status, stage, error, "
            + "total_steps, steps_done, latest_step, latest_checkpoint_key, created_at, started_at, finished_at, "
            + "updated_at, ranks, chunk_steps, keep_last_checkpoints";

    private final DataSource dataSource;

    public RunRepository(DataSource dataSource) {
        this.dataSource = dataSource;
    }

    /** Where a page of runs starts: after the run created at {@code createdAt} with id {@code id}. */
    public record PageStart(Instant createdAt, UUID id) {}

    /** A check in the transaction that stores a run or requeues it (the quotas): it refuses by throwing. */
    public interface Admission {
        void admit(Connection c) throws SQLException;
    }

    public void insert(UUID id, String owner, String name, String specJson, String workflowId, int totalSteps,
            ChosenOptions options, Admission admission) throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO runs (id, owner, name, spec, workflow_id, "
                    + "total_steps, ranks, chunk_steps, keep_last_checkpoints) "
                    + "VALUES (?, ?, ?, ?::jsonb, ?, ?, ?, ?, ?)")) {
                admission.admit(c);
                ps.setObject(1, id);
                ps.setString(2, owner);
                ps.setString(3, name);
                ps.setString(4, specJson);
                ps.setString(5, workflowId);
                ps.setInt(6, totalSteps);
                ps.setObject(7, options.ranks(), Types.INTEGER);
                ps.setObject(8, options.chunkSteps(), Types.INTEGER);
                ps.setObject(9, options.keepLastCheckpoints(), Types.INTEGER);
                ps.executeUpdate();
                c.commit();
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
    }

    /** Stores the ranks a live run's workflow has accepted, with an event saying so; false when the run is gone. */
    public boolean updateRanks(UUID runId, int ranks) throws SQLException {
        return updateWithEvent(runId, "UPDATE runs SET ranks = ?, updated_at = now() WHERE id = ?", ps -> {
            ps.setInt(1, ranks);
            ps.setObject(2, runId);
        }, "INFO", null, "ranks set to " + ranks + " for the chunks that start from now on");
    }

    public Optional<RunRow> find(UUID id) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ?")) {
            ps.setObject(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? Optional.of(row(rs)) : Optional.empty();
            }
        }
    }

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
        try (Connection c = dataSource.getConnection(); PreparedStatement ps = c.prepareStatement(sql.toString())) {
            for (int i = 0; i < args.size(); i++) {
                ps.setObject(i + 1, args.get(i));
            }
            List<RunRow> rows = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    rows.add(row(rs));
                }
            }
            return rows;
        }
    }

    public List<Sample> samples(UUID runId, int afterStep, int limit) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT step, loss, lr, tokens, tokens_per_second, "
                        + "recorded_at FROM progress_samples WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?")) {
            ps.setObject(1, runId);
            ps.setInt(2, afterStep);
            ps.setInt(3, limit);
            List<Sample> samples = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    samples.add(new Sample(rs.getInt(1), rs.getDouble(2), rs.getDouble(3), rs.getLong(4),
                            rs.getDouble(5), rs.getTimestamp(6).toInstant()));
                }
            }
            return samples;
        }
    }

    /** Training speed over the last samples: tokens/s of the newest, and optimizer steps per second from it. */
    public record Speed(double tokensPerSecond, double stepsPerSecond) {}

    public Optional<Speed> recentSpeed(UUID runId) throws SQLException {
        // Steps per second from the tokens a step consumes (progress_samples.tokens is per step) and the measured
        // tokens/s: samples are written in batches sharing one timestamp, so their wall-clock gaps say little.
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("WITH recent AS (SELECT step, tokens, tokens_per_second "
                        + "FROM progress_samples WHERE run_id = ? ORDER BY step DESC LIMIT 20) "
                        + "SELECT (SELECT tokens_per_second FROM recent ORDER BY step DESC LIMIT 1), "
                        + "avg(tokens) FROM recent")) {
            ps.setObject(1, runId);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next() || rs.getObject(1) == null) {
                    return Optional.empty();
                }
                double tokensPerSecond = rs.getDouble(1);
                double tokensPerStep = rs.getDouble(2);
                return Optional.of(new Speed(tokensPerSecond, tokensPerStep > 0 ? tokensPerSecond / tokensPerStep
                        : 0));
            }
        }
    }

    /** Evaluations from {@code fromStep} on, in step and name order, at most {@code limit}. */
    public List<EvalResult> evals(UUID runId, int fromStep, int limit) throws SQLException {
        return evals("SELECT step, name, value FROM eval_results WHERE run_id = ? AND step >= ? ORDER BY step, name "
                + "LIMIT ?", runId, fromStep, limit);
    }

    /** The newest {@code limit} evaluations, oldest first. */
    public List<EvalResult> newestEvals(UUID runId, int limit) throws SQLException {
        return evals("SELECT step, name, value FROM (SELECT * FROM eval_results WHERE run_id = ? AND step >= ? "
                + "ORDER BY step DESC, name DESC LIMIT ?) newest ORDER BY step, name", runId, 0, limit);
    }

    private List<EvalResult> evals(String query, UUID runId, int fromStep, int limit) throws SQLException {
        try (Connection c = dataSource.getConnection(); PreparedStatement ps = c.prepareStatement(query)) {
            ps.setObject(1, runId);
            ps.setInt(2, fromStep);
            ps.setInt(3, limit);
            List<EvalResult> evals = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    evals.add(new EvalResult(rs.getInt(1), rs.getString(2), rs.getDouble(3)));
                }
            }
            return evals;
        }
    }

    public List<CheckpointView> checkpoints(UUID runId) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT step, object_prefix, val_loss, bytes, pinned, "
                        + "committed_at FROM checkpoints WHERE run_id = ? ORDER BY step")) {
            ps.setObject(1, runId);
            List<CheckpointView> list = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    double valLoss = rs.getDouble(3);
                    list.add(new CheckpointView(rs.getLong(1), rs.getString(2), rs.wasNull() ? null : valLoss,
                            rs.getLong(4), rs.getBoolean(5), rs.getTimestamp(6).toInstant()));
                }
            }
            return list;
        }
    }

    /** The newest {@code limit} events, oldest first. */
    public List<EventView> events(UUID runId, int limit) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT at, level, stage, message FROM (SELECT * FROM "
                        + "run_events WHERE run_id = ? ORDER BY id DESC LIMIT ?) newest ORDER BY id")) {
            ps.setObject(1, runId);
            ps.setInt(2, limit);
            List<EventView> list = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    list.add(new EventView(rs.getTimestamp(1).toInstant(), rs.getString(2), rs.getString(3),
                            rs.getString(4)));
                }
            }
            return list;
        }
    }

    /** Stage results as stored: wire name to (result JSON, completion time), in stage order of completion. */
    public record StoredStageResult(String stage, String json, Instant completedAt) {}

    public Map<String, StoredStageResult> stageResults(UUID runId) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT stage, result::text, completed_at FROM "
                        + "stage_results WHERE run_id = ? ORDER BY completed_at")) {
            ps.setObject(1, runId);
            Map<String, StoredStageResult> results = new LinkedHashMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    results.put(rs.getString(1), new StoredStageResult(rs.getString(1), rs.getString(2),
                            rs.getTimestamp(3).toInstant()));
                }
            }
            return results;
        }
    }

    /** An exported file's row. */
    public record ArtifactRow(String path, String kind, String objectKey, long bytes, String sha256) {}

    public List<ArtifactRow> artifacts(UUID runId) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT path, kind, object_key, bytes, sha256 FROM "
                        + "artifacts WHERE run_id = ? ORDER BY path")) {
            ps.setObject(1, runId);
            List<ArtifactRow> list = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    list.add(new ArtifactRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4),
                            rs.getString(5)));
                }
            }
            return list;
        }
    }

    /**
     * A finished run goes back to QUEUED for a retry, with its error cleared and an event saying from where.
     *
     * @return false when the run was not finished (a concurrent retry won)
     */
    public boolean requeue(UUID runId, String fromStage, Admission admission) throws SQLException {
        return updateWithEvent(runId, admission, "UPDATE runs SET status = 'QUEUED', error = NULL, finished_at = NULL, "
                + "updated_at = now() WHERE id = ? AND finished_at IS NOT NULL", ps -> ps.setObject(1, runId),
                "INFO", fromStage, "retry from stage " + fromStage + " requested");
    }

    private interface Parameters {
        void set(PreparedStatement statement) throws SQLException;
    }

    /**
     * One transaction: {@code update} of the run's row (its parameters set by {@code parameters}) and, when it changed
     * that row, an event at {@code level}; false, and nothing written, when it changed none.
     */
    private boolean updateWithEvent(UUID runId, String update, Parameters parameters, String level, String stage,
            String message) throws SQLException {
        return updateWithEvent(runId, c -> { }, update, parameters, level, stage, message);
    }

    /** The same, with {@code admission} first in the transaction. */
    private boolean updateWithEvent(UUID runId, Admission admission, String update, Parameters parameters,
            String level, String stage, String message) throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement(update);
                    PreparedStatement event = c.prepareStatement("INSERT INTO run_events (run_id, level, stage, "
                            + "message) VALUES (?, ?, ?, ?)")) {
                admission.admit(c);
                parameters.set(ps);
                if (ps.executeUpdate() != 1) {
                    c.rollback();
                    return false;
                }
                event.setObject(1, runId);
                event.setString(2, level);
                event.setString(3, stage);
                event.setString(4, message);
                event.executeUpdate();
                c.commit();
                return true;
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
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
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try (PreparedStatement lock = c.prepareStatement("SELECT 1 FROM runs WHERE id = ? AND finished_at IS "
                    + "NOT NULL FOR UPDATE");
                    PreparedStatement delete = c.prepareStatement("DELETE FROM runs WHERE id = ?")) {
                lock.setObject(1, runId);
                try (ResultSet rs = lock.executeQuery()) {
                    if (!rs.next()) {
                        c.rollback();
                        return false;
                    }
                }
                cleanup.run();
                delete.setObject(1, runId);
                delete.executeUpdate();
                c.commit();
                return true;
            } catch (SQLException | IOException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
    }

    /**
     * Puts a run that a retry requeued back as it was ({@code before}), when its workflow could not be started; with
     * a WARN event. False when the run has moved on meanwhile (its workflow did start after all).
     */
    public boolean restoreFinished(RunRow before, String why) throws SQLException {
        return updateWithEvent(before.id(), "UPDATE runs SET status = ?, error = ?, finished_at = ?, updated_at = "
                + "now() WHERE id = ? AND status = 'QUEUED' AND finished_at IS NULL", ps -> {
                    ps.setString(1, before.status().name());
                    ps.setString(2, before.error());
                    ps.setTimestamp(3, Timestamp.from(before.finishedAt()));
                    ps.setObject(4, before.id());
                }, "WARN", before.stage(), why);
    }

    private static RunRow row(ResultSet rs) throws SQLException {
        return new RunRow(rs.getObject(1, UUID.class), rs.getString(2), rs.getString(3), rs.getString(4),
                rs.getString(5), RunStatus.valueOf(rs.getString(6)), rs.getString(7), rs.getString(8), rs.getInt(9),
                rs.getInt(10), rs.getLong(11), rs.getString(12), instant(rs, 13), instant(rs, 14), instant(rs, 15),
                instant(rs, 16), new ChosenOptions(rs.getObject(17, Integer.class), rs.getObject(18, Integer.class),
                rs.getObject(19, Integer.class)));
    }

    private static Instant instant(ResultSet rs, int column) throws SQLException {
        Timestamp t = rs.getTimestamp(column);
        return t == null ? null : t.toInstant();
    }
}
