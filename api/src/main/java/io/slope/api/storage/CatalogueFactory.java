package io.slope.api.storage;

import io.micronaut.context.annotation.Factory;
import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunPageReads;
import jakarta.inject.Singleton;
import java.time.Duration;
import javax.sql.DataSource;

/** The catalogue over the API's connection pool. A request fails at once when Postgres does not answer, never waits. */
@Factory
public class CatalogueFactory {
    @Singleton
    Database database(DataSource dataSource) {
        return new Database(dataSource, Duration.ZERO);
    }

    @Singleton
    RunCatalogue runCatalogue(Database database) {
        return new RunCatalogue(database);
    }

    @Singleton
    RunPageReads runPageReads(Database database) {
        return new RunPageReads(database);
    }
}
