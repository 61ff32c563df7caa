package io.slope.api.storage;

import io.micronaut.context.annotation.Context;
import javax.sql.DataSource;
import org.flywaydb.core.Flyway;

/** Applies the catalogue's migrations (slope-migrations) when the API starts, before any request is served. */
@Context
public class Migrations {
    public Migrations(DataSource dataSource) {
        Flyway.configure().dataSource(dataSource).load().migrate();
    }
}
