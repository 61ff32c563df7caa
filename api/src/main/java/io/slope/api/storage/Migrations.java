package io.slope.api.storage;

import io.micronaut.context.annotation.Context;
import io.slope.catalogue.Database;

/** Applies the catalogue's migrations when the API starts, before any request is served. */
@Context
public class Migrations {
    public Migrations(Database database) {
        database.migrate();
    }
}
