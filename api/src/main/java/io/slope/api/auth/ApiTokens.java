package io.slope.api.auth;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Optional;
import javax.sql.DataSource;

/**
 * Bearer tokens, stored as their SHA-256 only (table {@code api_tokens}): a leaked database gives no usable token.
 * Tokens are 32 random bytes, so a fast hash is enough (no brute force over a password space). Plain JDBC, so the
 * {@code token create} command uses it without starting the server.
 */
public final class ApiTokens {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String PREFIX = "slope_";

    private final DataSource dataSource;

    public ApiTokens(DataSource dataSource) {
        this.dataSource = dataSource;
    }

    /** Creates a token and returns it: the only time it is ever shown. */
    public String create(String user, boolean admin, String description) throws SQLException {
        if (user == null || !user.matches("[A-Za-z0-9._@-]{1,64}")) {
            throw new IllegalArgumentException("--user: 1 to 64 letters, digits, '.', '_', '@' or '-' (got '" + user
                    + "')");
        }
        byte[] secret = new byte[32];
        RANDOM.nextBytes(secret);
        String token = PREFIX + Base64.getUrlEncoder().withoutPadding().encodeToString(secret);
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("INSERT INTO api_tokens (owner, token_sha256, admin, "
                        + "description) VALUES (?, ?, ?, ?)")) {
            ps.setString(1, user);
            ps.setString(2, sha256(token));
            ps.setBoolean(3, admin);
            ps.setString(4, description);
            ps.executeUpdate();
        }
        return token;
    }

    /** The caller a token belongs to; empty for an unknown or revoked token. */
    public Optional<Caller> authenticate(String token) throws SQLException {
        if (token == null || token.isEmpty() || token.length() > 200) {
            return Optional.empty();
        }
        String hash = sha256(token);
        try (Connection c = dataSource.getConnection()) {
            Caller caller;
            boolean stale;
            try (PreparedStatement ps = c.prepareStatement("SELECT owner, admin, last_used_at IS NULL OR "
                    + "last_used_at < now() - interval '1 minute' FROM api_tokens WHERE token_sha256 = ? "
                    + "AND revoked_at IS NULL")) {
                ps.setString(1, hash);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        return Optional.empty();
                    }
                    caller = new Caller(rs.getString(1), rs.getBoolean(2));
                    stale = rs.getBoolean(3);
                }
            }
            // last_used_at to the minute: a write per request would cost more than the request.
            if (stale) {
                try (PreparedStatement ps = c.prepareStatement("UPDATE api_tokens SET last_used_at = now() "
                        + "WHERE token_sha256 = ?")) {
                    ps.setString(1, hash);
                    ps.executeUpdate();
                }
            }
            return Optional.of(caller);
        }
    }

    /** Revokes every token of a user; returns how many. */
    public int revoke(String user) throws SQLException {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("UPDATE api_tokens SET revoked_at = now() "
                        + "WHERE owner = ? AND revoked_at IS NULL")) {
            ps.setString(1, user);
            return ps.executeUpdate();
        }
    }

    static String sha256(String token) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(token.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }
}
