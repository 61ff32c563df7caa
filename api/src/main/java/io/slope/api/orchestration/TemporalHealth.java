package io.slope.api.orchestration;

import io.micronaut.health.HealthStatus;
import io.micronaut.management.health.indicator.HealthIndicator;
import io.micronaut.management.health.indicator.HealthResult;
import io.slope.api.config.TemporalSettings;
import io.temporal.serviceclient.WorkflowServiceStubs;
import jakarta.inject.Singleton;
import java.util.Map;
import org.reactivestreams.Publisher;
import io.micronaut.core.async.publisher.Publishers;
import java.util.concurrent.CompletableFuture;

/** {@code /health} includes whether the Temporal frontend answers its health check (submits need it). */
@Singleton
public class TemporalHealth implements HealthIndicator {
    private final WorkflowServiceStubs stubs;
    private final TemporalSettings settings;

    public TemporalHealth(WorkflowServiceStubs stubs, TemporalSettings settings) {
        this.stubs = stubs;
        this.settings = settings;
    }

    @Override
    public Publisher<HealthResult> getResult() {
        // Off the event loop: the health check is a blocking gRPC call.
        return Publishers.fromCompletableFuture(CompletableFuture.supplyAsync(() -> {
            HealthResult.Builder result = HealthResult.builder("temporal");
            try {
                boolean serving = stubs.healthCheck().getStatus().name().equals("SERVING");
                return result.status(serving ? HealthStatus.UP : HealthStatus.DOWN)
                        .details(Map.of("target", settings.target())).build();
            } catch (RuntimeException e) {
                return result.status(HealthStatus.DOWN).details(Map.of("target", settings.target(), "error",
                        String.valueOf(e.getMessage()))).build();
            }
        }));
    }
}
