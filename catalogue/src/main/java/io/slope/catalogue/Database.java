package io.slope.catalogue;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.sql.DataSource;
import org.flywaydb.core.Flyway;

/**
 * Connections to the run catalogue. The workers take one connection per unit of work, no pool (a JDBC URL):
 * bookkeeping is a few statements a second, and a fresh connection per call rides out a Postgres restart without
 * stale pooled connections; the API passes its pool. A unit of work that fails because the server is unreachable or
 * restarting is retried with backoff for up to {@code retryFor}; any other SQL error is not retried.
 */
public final class Database {
    private final DataSource dataSource;
    private final Duration retryFor;

    /** A unit of work on one connection, in one transaction. */
    public interface Work<T> {
        T run(Connection connection) throws SQLException;
    }

    /** Reads one row of a result into a value. */
    public interface RowReader<T> {
        T read(ResultSet row) throws SQLException;
    }

    public Database(String jdbcUrl, Duration retryFor) {
        this(new JdbcUrlDataSource(jdbcUrl), retryFor);
    }

    public Database(DataSource dataSource, Duration retryFor) {
        this.dataSource = dataSource;
        this.retryFor = retryFor;
    }

    /** SLOPE_DB_URL, e.g. jdbc:postgresql://127.0.0.1:5432/slope?user=slope&password=... */
    public static Database fromEnvironment(java.util.Map<String, String> env) {
        String url = env.get("SLOPE_DB_URL");
        if (url == null || url.isBlank()) {
            throw new IllegalStateException("SLOPE_DB_URL is not set: the worker needs the catalogue's JDBC URL, "
                    + "e.g. jdbc:postgresql://127.0.0.1:5432/slope?user=slope");
        }
        return new Database(url, Duration.ofMinutes(2));
    }

    /** The same catalogue, giving up at the first failure: for callers that must never wait on Postgres. */
    public Database withoutRetries() {
        return new Database(dataSource, Duration.ZERO);
    }

    /**
     * Applies the migrations of slope-migrations (idempotent; Flyway serialises concurrent callers). The only place
     * that does: the API on start, the pipeline worker on start and {@code slope token}.
     */
    public void migrate() {
        Flyway.configure().dataSource(dataSource).load().migrate();
    }

    /** Runs {@code query}, whose parameters are set, and reads every row of its result. */
    private static <T> List<T> list(PreparedStatement query, RowReader<T> reader) throws SQLException {
        List<T> rows = new ArrayList<>();
        try (ResultSet rs = query.executeQuery()) {
            while (rs.next()) {
                rows.add(reader.read(rs));
            }
        }
        return rows;
    }

    /** Runs {@code sql} with {@code parameters} (in order) in a transaction of its own and reads every row. */
    public <T> List<T> query(String sql, RowReader<T> reader, Object... parameters) throws SQLException {
        return transaction(c -> {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                for (int i = 0; i < parameters.length; i++) {
                    ps.setObject(i + 1, parameters[i]);
                }
                return list(ps, reader);
            }
        });
    }

    public <T> T transaction(Work<T> work) throws SQLException {
        long deadline = System.nanoTime() + retryFor.toNanos();
        long backoffMs = 100;
        while (true) {
            try (Connection connection = dataSource.getConnection()) {
                connection.setAutoCommit(false);
                try {
                    T result = work.run(connection);
                    connection.commit();
                    return result;
                } catch (SQLException | RuntimeException e) {
                    rollbackQuietly(connection);
                    throw e;
                }
            } catch (SQLException e) {
                if (!transient_(e) || System.nanoTime() > deadline) {
                    throw e;
                }
                sleep(backoffMs);
                backoffMs = Math.min(backoffMs * 2, 2000);
            }
        }
    }

    /** Connection failures (class 08), the server shutting down or starting (57P01-57P03), serialisation (40001). */
    static boolean transient_(SQLException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SQLException sql && sql.getSQLState() != null) {
                String state = sql.getSQLState();
                if (state.startsWith("08") || state.startsWith("57P") || state.equals("40001")
                        || state.equals("40P01")) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void rollbackQuietly(Connection connection) {
        try {
            connection.rollback();
        } catch (SQLException ignored) {
            // the connection is gone; the transaction is rolled back with it
        }
    }

    private static void sleep(long ms) throws SQLException {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SQLException("interrupted while waiting for the catalogue to come back", "08000", e);
        }
    }
}
