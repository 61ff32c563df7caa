package io.slope.migrations;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.slope.testinfra.TestServices;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.UUID;
import org.flywaydb.core.Flyway;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The migrations apply to a real Postgres, and the catalogue's constraints hold what the pipeline relies on. */
class MigrationsTest {
    private static String url;

    @BeforeAll
    static void migrate() {
        url = TestServices.get().postgres().createDatabase("migrations_test");
        var result = Flyway.configure().dataSource(url, null, null).load().migrate();
        assertEquals(2, result.migrationsExecuted);
        // Applying again is a no-op.
        assertEquals(0, Flyway.configure().dataSource(url, null, null).load().migrate().migrationsExecuted);
    }

    private static UUID newRun(Connection c) throws SQLException {
        UUID id = UUID.randomUUID();
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO runs (id, owner, name, spec, workflow_id, "
                + "total_steps) VALUES (?, 'alice', 'r', '{}'::jsonb, ?, 10)")) {
            ps.setObject(1, id);
            ps.setString(2, "run-" + id);
            ps.executeUpdate();
        }
        return id;
    }

    @Test
    void latestCheckpointMovesOnlyForward() throws SQLException {
        try (Connection c = DriverManager.getConnection(url)) {
            UUID run = newRun(c);
            String sql = "UPDATE runs SET latest_step = ?, latest_attempt = ?, latest_checkpoint_key = ? "
                    + "WHERE id = ? AND latest_step < ?";
            assertEquals(1, arbitrate(c, sql, run, 20, "a2"));
            assertEquals(0, arbitrate(c, sql, run, 10, "a1-stale"), "a stale attempt must not move latest back");
            assertEquals(0, arbitrate(c, sql, run, 20, "a1-stale"), "nor re-take the same step");
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT latest_step, latest_attempt FROM runs WHERE id = '"
                            + run + "'")) {
                rs.next();
                assertEquals(20, rs.getLong(1));
                assertEquals("a2", rs.getString(2));
            }
        }
    }

    private static int arbitrate(Connection c, String sql, UUID run, long step, String attempt)
            throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setLong(1, step);
            ps.setString(2, attempt);
            ps.setString(3, "runs/" + run + "/checkpoints/" + step + "/");
            ps.setObject(4, run);
            ps.setLong(5, step);
            return ps.executeUpdate();
        }
    }

    @Test
    void progressWritesAreIdempotent() throws SQLException {
        try (Connection c = DriverManager.getConnection(url)) {
            UUID run = newRun(c);
            String sql = "INSERT INTO progress_samples (run_id, step, loss, lr, tokens, tokens_per_second) "
                    + "VALUES (?, ?, ?, 0.001, 256, 1000) ON CONFLICT DO NOTHING";
            for (double loss : new double[] {4.0, 9.9}) {
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    ps.setObject(1, run);
                    ps.setInt(2, 1);
                    ps.setDouble(3, loss);
                    ps.executeUpdate();
                }
            }
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT count(*), min(loss) FROM progress_samples WHERE run_id = '"
                            + run + "'")) {
                rs.next();
                assertEquals(1, rs.getInt(1));
                assertEquals(4.0, rs.getDouble(2), "the first write stays");
            }
        }
    }

    @Test
    void constraintsRefuseInconsistentRuns() throws SQLException {
        try (Connection c = DriverManager.getConnection(url)) {
            UUID run = newRun(c);
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET status = 'BOGUS' WHERE id = '" + run
                    + "'"), "unknown status");
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET status = 'FAILED', finished_at = now() "
                    + "WHERE id = '" + run + "'"), "FAILED without an error");
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET status = 'SUCCEEDED' WHERE id = '" + run
                    + "'"), "finished without finished_at");
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET stage = 'training' WHERE id = '" + run
                    + "'"), "unknown stage");
            exec(c, "UPDATE runs SET status = 'FAILED', finished_at = now(), error = 'corpus: empty' WHERE id = '"
                    + run + "'");
            // Deleting a run deletes everything that belongs to it.
            exec(c, "INSERT INTO run_events (run_id, level, message) VALUES ('" + run + "', 'INFO', 'x')");
            exec(c, "DELETE FROM runs WHERE id = '" + run + "'");
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT count(*) FROM run_events WHERE run_id = '" + run + "'")) {
                rs.next();
                assertEquals(0, rs.getInt(1));
            }
        }
    }

    @Test
    void runOptionsAreBoundedAndRunsStoredBeforeThemHaveNone() throws SQLException {
        // A catalogue at V1 with a run in it, then migrated to the newest version: the run has no options (NULL,
        // the service's defaults), and new ones hold only what RunOptions allows.
        String old = TestServices.get().postgres().createDatabase("migrations_v1_test");
        Flyway.configure().dataSource(old, null, null).target("1").load().migrate();
        UUID before;
        try (Connection c = DriverManager.getConnection(old)) {
            before = newRun(c);
        }
        assertEquals(1, Flyway.configure().dataSource(old, null, null).load().migrate().migrationsExecuted);
        try (Connection c = DriverManager.getConnection(old)) {
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT ranks, chunk_steps, keep_last_checkpoints FROM runs WHERE "
                            + "id = '" + before + "'")) {
                rs.next();
                assertNull(rs.getObject(1));
                assertNull(rs.getObject(2));
                assertNull(rs.getObject(3));
            }
            UUID run = newRun(c);
            exec(c, "UPDATE runs SET ranks = 64, chunk_steps = 1, keep_last_checkpoints = 1 WHERE id = '" + run + "'");
            exec(c, "UPDATE runs SET ranks = 1 WHERE id = '" + run + "'");
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET ranks = 0 WHERE id = '" + run + "'"));
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET ranks = 65 WHERE id = '" + run + "'"));
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET chunk_steps = 0 WHERE id = '" + run
                    + "'"));
            assertThrows(SQLException.class, () -> exec(c, "UPDATE runs SET keep_last_checkpoints = 0 WHERE id = '"
                    + run + "'"));
        }
    }

    private static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.executeUpdate(sql);
        }
    }
}
