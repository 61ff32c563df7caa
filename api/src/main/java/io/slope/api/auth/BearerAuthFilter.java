package io.slope.api.auth;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpHeaders;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ServerFilter;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.slope.api.problem.Problems;
import java.sql.SQLException;
import java.util.List;
import java.util.Optional;

/**
 * Every {@code /api/**} request needs {@code Authorization: Bearer <token>}: none, a malformed header or an unknown
 * token is a 401 (with {@code WWW-Authenticate}); otherwise the request carries its {@link Caller}.
 */
@ServerFilter("/api/**")
public final class BearerAuthFilter {
    private final ApiTokens tokens;

    public BearerAuthFilter(ApiTokens tokens) {
        this.tokens = tokens;
    }

    @RequestFilter
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Nullable
    public HttpResponse<?> authenticate(HttpRequest<?> request) throws SQLException {
        Optional<String> header = request.getHeaders().getAuthorization();
        if (header.isEmpty()) {
            return unauthorized(request, "this endpoint needs a bearer token: send 'Authorization: Bearer <token>' "
                    + "(an operator creates one with `slope token create --user NAME`)");
        }
        String token = bearerToken(header.get());
        if (token == null) {
            return unauthorized(request, "the Authorization header must be 'Bearer <token>'");
        }
        Optional<Caller> caller = tokens.authenticate(token);
        if (caller.isEmpty()) {
            return unauthorized(request, "the bearer token is unknown or revoked");
        }
        request.setAttribute(Caller.ATTRIBUTE, caller.get());
        return null;
    }

    /** The token of an {@code Authorization: Bearer <token>} header's value, or null when it is not one. */
    static String bearerToken(String header) {
        String value = header.strip();
        return value.regionMatches(true, 0, "Bearer ", 0, 7) ? value.substring(7).strip() : null;
    }

    static HttpResponse<?> unauthorized(HttpRequest<?> request, String detail) {
        return Problems.response(HttpStatus.UNAUTHORIZED, "unauthorized", detail, List.of(), request)
                .header(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"slope\"");
    }
}
