package io.slope.api.auth;

/** Who a request is from: the owner of its bearer token, and whether that token is an admin's. */
public record Caller(String user, boolean admin) {
    /** The request attribute the auth filter stores the caller under. */
    public static final String ATTRIBUTE = "slope.caller";

    /** Whether this caller may see and act on a run owned by {@code owner}. */
    public boolean mayAccess(String owner) {
        return admin || user.equals(owner);
    }
}
