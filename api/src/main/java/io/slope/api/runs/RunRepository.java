package io.slope.api.runs;

import io.slope.api.runs.RunViews.CheckpointView;
import io.slope.api.runs.RunViews.EvalResult;
import io.slope.api.runs.RunViews.EventView;
import io.slope.api.runs.RunViews.Sample;
import io.slope.catalogue.Database;
import jakarta.inject.Singleton;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import javax.sql.DataSource;

/** What the run page shows of a run beside its row (the catalogue's {@code RunCatalogue}): its curves and history. */
@Singleton
public class RunRepository {
    private final DataSource dataSource;

    public RunRepository(DataSource dataSource) {
        this.dataSource = dataSource;
    }

    public List<Sample> samples(UUID runId, int afterStep, int limit) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT step, loss, lr, tokens, tokens_per_second, "
                        + "recorded_at FROM progress_samples WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?")) {
            ps.setObject(1, runId);
            ps.setInt(2, afterStep);
            ps.setInt(3, limit);
            return Database.list(ps, rs -> new Sample(rs.getInt(1), rs.getDouble(2), rs.getDouble(3),
                    rs.getLong(4), rs.getDouble(5), rs.getTimestamp(6).toInstant()));
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
            return Database.list(ps, rs -> new EvalResult(rs.getInt(1), rs.getString(2), rs.getDouble(3)));
        }
    }

    public List<CheckpointView> checkpoints(UUID runId) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT step, object_prefix, val_loss, bytes, pinned, "
                        + "committed_at FROM checkpoints WHERE run_id = ? ORDER BY step")) {
            ps.setObject(1, runId);
            return Database.list(ps, rs -> {
                double valLoss = rs.getDouble(3);
                return new CheckpointView(rs.getLong(1), rs.getString(2), rs.wasNull() ? null : valLoss, rs.getLong(4),
                        rs.getBoolean(5), rs.getTimestamp(6).toInstant());
            });
        }
    }

    /** The newest {@code limit} events, oldest first. */
    public List<EventView> events(UUID runId, int limit) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT at, level, stage, message FROM (SELECT * FROM "
                        + "run_events WHERE run_id = ? ORDER BY id DESC LIMIT ?) newest ORDER BY id")) {
            ps.setObject(1, runId);
            ps.setInt(2, limit);
            return Database.list(ps, rs -> new EventView(rs.getTimestamp(1).toInstant(), rs.getString(2),
                    rs.getString(3), rs.getString(4)));
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
}
