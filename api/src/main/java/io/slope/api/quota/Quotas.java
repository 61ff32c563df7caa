package io.slope.api.quota;

import io.slope.api.config.QuotaSettings;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.workflows.run.RunOptions;
import jakarta.inject.Singleton;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import javax.sql.DataSource;

/**
 * The per-user quotas ({@link QuotaSettings}): what a user holds, from the catalogue, and a 429 naming the limit, the
 * usage and the configured value when a request would take more. {@link #admit} runs inside the transaction that stores
 * what the request asks for, under a lock per user, so two requests of one user cannot both pass on the same usage.
 */
@Singleton
public class Quotas {
    /** Runs that hold a place: a paused run may resume at any time. */
    private static final String UNFINISHED = "status IN ('QUEUED', 'RUNNING', 'PAUSED')";

    private final QuotaSettings settings;
    private final DataSource dataSource;

    public Quotas(QuotaSettings settings, DataSource dataSource) {
        this.settings = settings;
        this.dataSource = dataSource;
    }

    /** What one user holds: unfinished runs, their ranks, and the bytes of their corpora, checkpoints and exports. */
    public record Usage(long runs, long ranks, long storageBytes) {}

    /**
     * What a request would add: runs, ranks (a change of a run's ranks: the difference) and stored bytes;
     * {@code storing} when it writes objects later (a run's checkpoints), so a user at the storage quota is refused.
     */
    public record Demand(int runs, int ranks, long bytes, boolean storing) {
        public static Demand run(int ranks) {
            return new Demand(1, ranks, 0, true);
        }

        public static Demand ranks(int more) {
            return new Demand(0, more, 0, false);
        }

        public static Demand bytes(long bytes) {
            return new Demand(0, 0, bytes, true);
        }
    }

    /** Checks {@code demand} of {@code owner} in the caller's transaction on {@code c}; a 429 when over a quota. */
    public void admit(Connection c, String owner, Demand demand) throws SQLException {
        try (PreparedStatement lock = c.prepareStatement("SELECT pg_advisory_xact_lock(hashtext(?))")) {
            lock.setString(1, "slope-quota:" + owner);
            lock.execute();
        }
        refuseOver(owner, usage(c, owner), demand);
    }

    /** The same check in a transaction of its own (where what is asked for is stored later, elsewhere). */
    public void check(String owner, Demand demand) throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try {
                admit(c, owner, demand);
            } finally {
                c.rollback();
            }
        }
    }

    public Usage usage(Connection c, String owner) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT (SELECT count(*) FROM runs WHERE owner = ? AND "
                + UNFINISHED + "), (SELECT coalesce(sum(coalesce(ranks, ?)), 0) FROM runs WHERE owner = ? AND "
                + UNFINISHED + "), (SELECT coalesce(sum(bytes), 0) FROM corpora WHERE owner = ?) "
                + "+ (SELECT coalesce(sum(k.bytes), 0) FROM checkpoints k JOIN runs r ON r.id = k.run_id "
                + "WHERE r.owner = ?) + (SELECT coalesce(sum(a.bytes), 0) FROM artifacts a JOIN runs r "
                + "ON r.id = a.run_id WHERE r.owner = ?)")) {
            ps.setString(1, owner);
            ps.setInt(2, RunOptions.DEFAULT.ranks());
            for (int i = 3; i <= 6; i++) {
                ps.setString(i, owner);
            }
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new Usage(rs.getLong(1), rs.getLong(2), rs.getLong(3));
            }
        }
    }

    private void refuseOver(String owner, Usage usage, Demand demand) {
        if (demand.runs() > 0 && usage.runs() + demand.runs() > settings.maxActiveRuns()) {
            throw ProblemException.overLimit(new Problem.Limit("SLOPE_QUOTA_MAX_ACTIVE_RUNS",
                    settings.maxActiveRuns(), usage.runs()), owner + " has " + usage.runs() + " unfinished runs "
                    + "(queued, running or paused); the quota is " + settings.maxActiveRuns() + " "
                    + "(SLOPE_QUOTA_MAX_ACTIVE_RUNS): wait for one to finish, or cancel one");
        }
        if (demand.ranks() > 0 && usage.ranks() + demand.ranks() > settings.maxActiveRanks()) {
            throw ProblemException.overLimit(new Problem.Limit("SLOPE_QUOTA_MAX_ACTIVE_RANKS",
                    settings.maxActiveRanks(), usage.ranks()), owner + "'s unfinished runs train on "
                    + usage.ranks() + " ranks; " + demand.ranks() + " more would pass the quota of "
                    + settings.maxActiveRanks() + " (SLOPE_QUOTA_MAX_ACTIVE_RANKS): ask for fewer ranks, or wait "
                    + "for a run to finish");
        }
        long max = settings.maxStorageBytes();
        if (demand.storing() && (usage.storageBytes() >= max || usage.storageBytes() + demand.bytes() > max)) {
            throw ProblemException.overLimit(new Problem.Limit("SLOPE_QUOTA_MAX_STORAGE_BYTES", max,
                    usage.storageBytes()), owner + "'s corpora, checkpoints and exports take " + usage.storageBytes()
                    + " bytes" + (demand.bytes() > 0 ? ", this upload " + demand.bytes() + " more" : "")
                    + "; the quota is " + max + " bytes (SLOPE_QUOTA_MAX_STORAGE_BYTES): delete finished runs first");
        }
    }
}
