package io.slope.catalogue;

import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.testinfra.TestServices;
import java.sql.SQLException;
import java.time.Duration;
import java.util.UUID;

/** A migrated catalogue of its own on the test JVM's Postgres, and QUEUED runs to fill it with. */
public final class TestCatalogue {
    public static final ResolvedSpec SPEC = RunSpecCodec.parseResolved(
            "{\"name\": \"tiny\", \"data\": {\"corpus\": [\"/corpus.txt\"]}}");

    private TestCatalogue() {}

    public static RunCatalogue migrated(String database) {
        Database db = new Database(TestServices.get().postgres().createDatabase(database), Duration.ofSeconds(60));
        db.migrate();
        return new RunCatalogue(db);
    }

    /** A new run of {@link #SPEC}, owned by {@code tester}, its workflow id {@code run-<id>}. */
    public static UUID newRun(RunCatalogue catalogue) throws SQLException {
        UUID id = UUID.randomUUID();
        catalogue.createRun(id, "tester", SPEC, "run-" + id);
        return id;
    }
}
