package io.slope.api.auth;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpHeaders;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ResponseFilter;
import io.micronaut.http.annotation.ServerFilter;
import io.micronaut.management.health.indicator.HealthResult;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.slope.api.problem.Problems;
import java.sql.SQLException;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every {@code /api/**} request needs {@code Authorization: Bearer <token>}: none, a malformed header or an unknown
 * token is a 401 (with {@code WWW-Authenticate}); otherwise the request carries its {@link Caller}.
 *
 * <p>The operators' endpoints too: health's details (they name the datasource URL, which may carry a password) go
 * only to a caller with a valid token, anyone gets the status (for probes); {@code /prometheus} needs a token (a
 * scraper's, e.g. Prometheus's {@code authorization} setting), since its metrics describe every user's traffic.
 */
@ServerFilter({"/api/**", "/health", "/health/**", "/prometheus", "/prometheus/**"})
public final class BearerAuthFilter {
    private static final String OPERATOR = "slope.operator-endpoint.authenticated";

    private final ApiTokens tokens;

    public BearerAuthFilter(ApiTokens tokens) {
        this.tokens = tokens;
    }

    @RequestFilter
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Nullable
    public HttpResponse<?> authenticate(HttpRequest<?> request) throws SQLException {
        if (!request.getPath().startsWith("/api/")) {
            return operatorEndpoint(request);
        }
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

    private HttpResponse<?> operatorEndpoint(HttpRequest<?> request) throws SQLException {
        String token = request.getHeaders().getAuthorization().map(BearerAuthFilter::bearerToken).orElse(null);
        if (token != null && tokens.authenticate(token).isPresent()) {
            request.setAttribute(OPERATOR, true);
            return null;
        }
        if (request.getPath().startsWith("/prometheus")) {
            return unauthorized(request, "/prometheus needs a bearer token: scrape it with 'Authorization: Bearer "
                    + "<token>' (an operator creates one with `slope token create --user NAME`)");
        }
        return null;
    }

    /** An anonymous caller's health is its status only. */
    @ResponseFilter
    public void hideHealthDetails(HttpRequest<?> request, MutableHttpResponse<?> response) {
        if (request.getAttribute(OPERATOR).isEmpty() && response.body() instanceof HealthResult health) {
            response.body(Map.of("status", health.getStatus().getName()));
        }
    }

    /** The token of an {@code Authorization: Bearer <token>} header's value, or null when it is not one. */
    private static String bearerToken(String header) {
        String value = header.strip();
        return value.regionMatches(true, 0, "Bearer ", 0, 7) ? value.substring(7).strip() : null;
    }

    private static HttpResponse<?> unauthorized(HttpRequest<?> request, String detail) {
        return Problems.response(HttpStatus.UNAUTHORIZED, "unauthorized", detail, List.of(), request)
                .header(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"slope\"");
    }
}
