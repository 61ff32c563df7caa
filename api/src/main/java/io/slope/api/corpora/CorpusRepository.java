package io.slope.api.corpora;

import jakarta.inject.Singleton;
import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.util.Optional;
import javax.sql.DataSource;

/** Uploaded corpora (table {@code corpora}), content addressed: the id is the SHA-256 of the bytes. */
@Singleton
public class CorpusRepository {
    private final DataSource dataSource;

    public CorpusRepository(DataSource dataSource) {
        this.dataSource = dataSource;
    }

    public record CorpusRow(String id, String owner, String objectKey, long bytes, String filename,
            Instant createdAt) {}

    /** What happens before a new corpus's row is inserted, in its transaction: the quota check, the object's copy. */
    public interface BeforeInsert {
        void run(Connection c) throws SQLException, IOException;
    }

    /** The row as stored, and whether this call inserted it. */
    public record Stored(CorpusRow row, boolean created) {}

    /**
     * Registers a corpus unless one with that content exists, {@code before} first (which refuses by throwing, and
     * then nothing is inserted); returns the row as stored.
     */
    public Stored insertIfAbsent(String id, String owner, String objectKey, long bytes, String filename,
            BeforeInsert before) throws SQLException, IOException {
        boolean created;
        try (Connection c = dataSource.getConnection()) {
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO corpora (id, owner, object_key, bytes, "
                    + "filename) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")) {
                created = find(c, id).isEmpty();
                if (created) {
                    before.run(c);
                    Object[] values = {id, owner, objectKey, bytes, filename};
                    for (int i = 0; i < values.length; i++) {
                        ps.setObject(i + 1, values[i]);
                    }
                    created = ps.executeUpdate() == 1;
                }
                c.commit();
            } catch (SQLException | IOException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        }
        return new Stored(find(id).orElseThrow(), created);
    }

    public Optional<CorpusRow> find(String id) throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            return find(c, id);
        }
    }

    private static Optional<CorpusRow> find(Connection c, String id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT id, owner, object_key, bytes, filename, created_at "
                + "FROM corpora WHERE id = ?")) {
            ps.setString(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return Optional.empty();
                }
                return Optional.of(new CorpusRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4),
                        rs.getString(5), rs.getTimestamp(6).toInstant()));
            }
        }
    }
}
