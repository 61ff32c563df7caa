package io.slope.activities;

import io.slope.catalogue.Database;
import io.slope.catalogue.RunCatalogue;
import io.slope.localservices.S3Server;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import io.slope.testinfra.TestServices;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.UUID;

/** Real servers for activity tests: a bucket per caller on S3Proxy, a migrated database on Postgres. */
public final class Fixtures {
    private Fixtures() {}

    public static ObjectStore objectStore(String bucket) {
        S3Server s3 = TestServices.get().s3();
        ObjectStore store = new ObjectStore(new S3Config(s3.endpoint(), S3Server.ACCESS_KEY, S3Server.SECRET_KEY,
                bucket, null));
        try {
            store.ensureBucket();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return store;
    }

    public static RunCatalogue catalogue(String database) {
        Database db = new Database(TestServices.get().postgres().createDatabase(database), Duration.ofSeconds(60));
        db.migrate();
        return new RunCatalogue(db);
    }

    public static ResolvedSpec tinySpec(String corpus) {
        return specWithData("\"corpus\": [\"" + corpus + "\"], \"tokenizer\": \"char\", \"valFraction\": 0.1");
    }

    /** {@link #tinySpec(String)} with held-out files ({@code data.validation}) instead of a held-out fraction. */
    public static ResolvedSpec tinySpec(String corpus, String validation) {
        return specWithData("\"corpus\": [\"" + corpus + "\"], \"validation\": [\"" + validation
                + "\"], \"tokenizer\": \"char\"");
    }

    private static ResolvedSpec specWithData(String data) {
        return RunSpecCodec.parseResolved("""
                {"name": "tiny", "model": {"preset": "tiny", "layers": 1, "dModel": 32, "heads": 2, "seqLen": 16},
                 "training": {"steps": 12, "batchSize": 2, "seed": 7},
                 "optimizer": {"lr": 0.003, "warmupSteps": 2},
                 "data": {%s},
                 "eval": {"every": 4, "maxWindows": 8}, "checkpointEvery": 4, "backend": "cpu", "threads": 1}
                """.formatted(data));
    }

    public static UUID newRun(RunCatalogue catalogue, ResolvedSpec spec) throws java.sql.SQLException {
        UUID id = UUID.randomUUID();
        catalogue.createRun(id, "tester", spec, "run-" + id);
        return id;
    }
}
