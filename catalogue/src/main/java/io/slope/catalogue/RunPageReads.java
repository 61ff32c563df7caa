package io.slope.catalogue;

import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Collectors;

/**
 * What the run page shows of a run beside its row ({@link RunCatalogue#run}) and its checkpoints
 * ({@link RunCatalogue#checkpoints}): its curves and its history. Reads only; the pipeline writes these rows through
 * {@link RunCatalogue}.
 */
public final class RunPageReads {
    private final Database db;

    public RunPageReads(Database db) {
        this.db = db;
    }

    /** One optimizer step of the loss curve, as recorded. */
    public record Sample(int step, double loss, double lr, long tokens, double tokensPerSecond, Instant recordedAt) {}

    /** Training speed over the last samples: tokens/s of the newest, and optimizer steps per second from it. */
    public record Speed(double tokensPerSecond, double stepsPerSecond) {}

    /** One evaluation: a named loss at a step. */
    public record Eval(int step, String name, double value) {}

    /** One event of the run's history; {@code stage} null for one of the whole run. */
    public record Event(Instant at, String level, String stage, String message) {}

    /** The steps after {@code afterStep}, at most {@code limit}, in step order. */
    public List<Sample> samples(UUID runId, int afterStep, int limit) throws SQLException {
        return db.query("SELECT step, loss, lr, tokens, tokens_per_second, recorded_at FROM progress_samples "
                + "WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?", rs -> new Sample(rs.getInt(1),
                rs.getDouble(2), rs.getDouble(3), rs.getLong(4), rs.getDouble(5), rs.getTimestamp(6).toInstant()),
                runId, afterStep, limit);
    }

    /** Empty before the first sample. */
    public Optional<Speed> recentSpeed(UUID runId) throws SQLException {
        // Steps per second from the tokens a step consumes (progress_samples.tokens is per step) and the measured
        // tokens/s: samples are written in batches sharing one timestamp, so their wall-clock gaps say little.
        return db.query("WITH recent AS (SELECT step, tokens, tokens_per_second FROM progress_samples "
                + "WHERE run_id = ? ORDER BY step DESC LIMIT 20) "
                + "SELECT tokens_per_second, (SELECT avg(tokens) FROM recent) FROM recent ORDER BY step DESC LIMIT 1",
                rs -> {
                    double tokensPerSecond = rs.getDouble(1);
                    double tokensPerStep = rs.getDouble(2);
                    return new Speed(tokensPerSecond, tokensPerStep > 0 ? tokensPerSecond / tokensPerStep : 0);
                }, runId).stream().findFirst();
    }

    /** Evaluations from {@code fromStep} on, in step and name order, at most {@code limit}. */
    public List<Eval> evals(UUID runId, int fromStep, int limit) throws SQLException {
        return db.query("SELECT step, name, value FROM eval_results WHERE run_id = ? AND step >= ? "
                + "ORDER BY step, name LIMIT ?", RunPageReads::eval, runId, fromStep, limit);
    }

    /** The newest {@code limit} evaluations, oldest first. */
    public List<Eval> newestEvals(UUID runId, int limit) throws SQLException {
        return db.query("SELECT step, name, value FROM (SELECT * FROM eval_results WHERE run_id = ? "
                + "ORDER BY step DESC, name DESC LIMIT ?) newest ORDER BY step, name", RunPageReads::eval, runId,
                limit);
    }

    /** The newest {@code limit} events, oldest first. */
    public List<Event> events(UUID runId, int limit) throws SQLException {
        return db.query("SELECT at, level, stage, message FROM (SELECT * FROM run_events WHERE run_id = ? "
                + "ORDER BY id DESC LIMIT ?) newest ORDER BY id", rs -> new Event(rs.getTimestamp(1).toInstant(),
                rs.getString(2), rs.getString(3), rs.getString(4)), runId, limit);
    }

    /** When each stage with a stored result completed, by the stage's wire name. */
    public Map<String, Instant> stageCompletions(UUID runId) throws SQLException {
        return db.query("SELECT stage, completed_at FROM stage_results WHERE run_id = ?",
                rs -> Map.entry(rs.getString(1), rs.getTimestamp(2).toInstant()), runId).stream()
                .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
    }

    private static Eval eval(ResultSet rs) throws SQLException {
        return new Eval(rs.getInt(1), rs.getString(2), rs.getDouble(3));
    }
}
