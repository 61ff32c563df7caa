package io.slope.api.auth;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ResponseFilter;
import io.micronaut.http.annotation.ServerFilter;
import io.micronaut.management.health.indicator.HealthResult;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import java.sql.SQLException;
import java.util.Map;

/**
 * {@code /health} and {@code /prometheus}, the operators' endpoints. Health's details (they name the datasource URL,
 * which may carry a password) go only to a caller with a valid bearer token; anyone gets the status, for probes.
 * Prometheus needs a token (a scraper's, e.g. Prometheus's {@code authorization} setting), since its metrics describe
 * every user's traffic.
 */
@ServerFilter({"/health", "/health/**", "/prometheus", "/prometheus/**"})
public final class OperatorEndpointsFilter {
    private static final String AUTHENTICATED = "slope.operator-endpoint.authenticated";

    private final ApiTokens tokens;

    public OperatorEndpointsFilter(ApiTokens tokens) {
        this.tokens = tokens;
    }

    @RequestFilter
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Nullable
    public HttpResponse<?> authenticate(HttpRequest<?> request) throws SQLException {
        String token = request.getHeaders().getAuthorization().map(BearerAuthFilter::bearerToken).orElse(null);
        if (token != null && tokens.authenticate(token).isPresent()) {
            request.setAttribute(AUTHENTICATED, true);
            return null;
        }
        if (request.getPath().startsWith("/prometheus")) {
            return BearerAuthFilter.unauthorized(request, "/prometheus needs a bearer token: scrape it with "
                    + "'Authorization: Bearer <token>' (an operator creates one with `slope token create --user NAME`)");
        }
        return null;
    }

    /** An anonymous caller's health is its status only. */
    @ResponseFilter
    public void hideDetails(HttpRequest<?> request, MutableHttpResponse<?> response) {
        if (request.getAttribute(AUTHENTICATED).isEmpty() && response.body() instanceof HealthResult health) {
            response.body(Map.of("status", health.getStatus().getName()));
        }
    }
}
