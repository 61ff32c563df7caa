package io.slope.api.orchestration;

import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import io.micronaut.context.event.ApplicationEventListener;
import io.micronaut.runtime.server.event.ServerStartupEvent;
import io.micronaut.scheduling.annotation.Scheduled;
import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.reconcile.Reconciler;
import io.slope.workflows.run.RunOptions;
import io.temporal.client.WorkflowClient;
import jakarta.inject.Singleton;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * When the API has started, and every {@code slope.reconcile-every} (5 minutes) after: every run Postgres shows
 * unfinished without a live workflow (a lost Temporal database, or a submit while Temporal was down) is started again
 * by the catalogue's reconciler, with the run options stored with it (the defaults for those it has none of), in the
 * background so a slow Temporal does not hold up the API.
 */
@Singleton
@Requires(property = "slope.reconcile", notEquals = "false")
public class CatalogueReconciler implements ApplicationEventListener<ServerStartupEvent> {
    private static final Logger LOG = LoggerFactory.getLogger(CatalogueReconciler.class);

    private final WorkflowClient client;
    private final String jdbcUrl;

    public CatalogueReconciler(WorkflowClient client, @Value("${datasources.default.url}") String jdbcUrl) {
        this.client = client;
        this.jdbcUrl = jdbcUrl;
    }

    @Override
    public void onApplicationEvent(ServerStartupEvent event) {
        Thread.ofVirtual().name("startup-reconciler").start(this::reconcile);
    }

    @Scheduled(fixedDelay = "${slope.reconcile-every:5m}", initialDelay = "${slope.reconcile-every:5m}")
    void periodically() {
        reconcile();
    }

    /** The runs started again; none when Temporal or Postgres cannot be reached now (the next round retries). */
    public synchronized List<UUID> reconcile() {
        try {
            List<UUID> restarted = new Reconciler(client, new RunCatalogue(new Database(jdbcUrl,
                    Duration.ofSeconds(30))), RunOptions.DEFAULT).reconcile();
            if (!restarted.isEmpty()) {
                LOG.info("reconciler: started again: {}", restarted);
            }
            return restarted;
        } catch (Exception e) {
            LOG.warn("reconciler: could not reconcile the catalogue with Temporal now: {}", e.toString());
            return List.of();
        }
    }
}
