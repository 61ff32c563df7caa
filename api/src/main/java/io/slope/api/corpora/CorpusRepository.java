package io.slope.api.corpora;

import jakarta.inject.Singleton;
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

    /** Registers a corpus unless one with that content exists; returns the row as stored. */
    public CorpusRow insertIfAbsent(String id, String owner, String objectKey, long bytes, String filename)
            throws SQLException {
        try (Connection c = dataSource.getConnection()) {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO corpora (id, owner, object_key, bytes, "
                    + "filename) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")) {
                ps.setString(1, id);
                ps.setString(2, owner);
                ps.setString(3, objectKey);
                ps.setLong(4, bytes);
                ps.setString(5, filename);
                ps.executeUpdate();
            }
        }
        return find(id).orElseThrow();
    }

    public Optional<CorpusRow> find(String id) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("SELECT id, owner, object_key, bytes, filename, "
                        + "created_at FROM corpora WHERE id = ?")) {
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
