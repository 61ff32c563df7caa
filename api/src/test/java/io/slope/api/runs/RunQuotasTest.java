package io.slope.api.runs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micronaut.context.ApplicationContext;
import io.micronaut.http.HttpStatus;
import io.slope.api.ApiHarness;
import io.slope.api.auth.Caller;
import io.slope.api.config.CorpusSettings;
import io.slope.api.config.GpuSettings;
import io.slope.api.config.QuotaSettings;
import io.slope.api.corpora.CorpusReferences;
import io.slope.api.corpora.CorpusRepository;
import io.slope.api.corpora.CorpusUploads;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.quota.Quotas;
import io.slope.api.storage.Storage;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunPageReads;
import io.slope.catalogue.RunStatus;
import io.slope.spec.pipeline.Stage;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import javax.sql.DataSource;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The per-user quotas on the real catalogue: over one, submit, retry, a change of ranks and a corpus upload are a 429
 * naming the limit, the usage and the configured value, and nothing is stored. Workflows are recorded, not started.
 */
class RunQuotasTest {
    private static ApplicationContext context;
    private static RunCatalogue catalogue;
    private static DataSource dataSource;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        ApiHarness api = ApiHarness.get();
        context = api.server.getApplicationContext();
        catalogue = context.getBean(RunCatalogue.class);
        dataSource = context.getBean(DataSource.class);
        corpus = api.corpus();
    }

    /** A user of this test alone, so nobody else's runs count. */
    private static Caller someone() {
        return new Caller("quota-" + UUID.randomUUID(), false);
    }

    private static RunService service(RecordedStarts workflows, QuotaSettings quota) {
        return new RunService(catalogue, context.getBean(RunPageReads.class), workflows,
                context.getBean(CorpusReferences.class), context.getBean(Storage.class), new Quotas(quota, dataSource),
                context.getBean(GpuSettings.class));
    }

    /** A tiny spec whose gradAccum 4 allows 1, 2 or 4 ranks, with {@code ranks} as its option. */
    private static String spec(int ranks) {
        String tiny = ApiHarness.tinySpec("quota", corpus, 10).replace("\"batchSize\": 4,",
                "\"batchSize\": 4, \"gradAccum\": 4,");
        return tiny.substring(0, tiny.lastIndexOf('}')) + ", \"options\": {\"ranks\": " + ranks + "}}";
    }

    private static ProblemException assertOverLimit(String limit, long configured, long usage,
            org.junit.jupiter.api.function.Executable request) {
        ProblemException refused = assertThrows(ProblemException.class, request);
        assertEquals(HttpStatus.TOO_MANY_REQUESTS, refused.status(), refused.getMessage());
        assertEquals(new Problem.Limit(limit, configured, usage), refused.limit());
        assertTrue(refused.getMessage().contains(limit), refused.getMessage());
        return refused;
    }

    private static long count(String sql, String owner) throws Exception {
        try (Connection c = dataSource.getConnection(); PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setString(1, owner);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private static void finish(String id, String status) throws Exception {
        try (Connection c = dataSource.getConnection();
                PreparedStatement ps = c.prepareStatement("UPDATE runs SET status = ?, error = 'stopped', "
                        + "finished_at = now() WHERE id = ?")) {
            ps.setString(1, status);
            ps.setObject(2, UUID.fromString(id));
            ps.executeUpdate();
        }
    }

    @Test
    void submitsAndRetriesOverTheRunsQuotaAre429AndStoreNothing() throws Exception {
        Caller caller = someone();
        RecordedStarts workflows = new RecordedStarts(context, null);
        RunService service = service(workflows, new QuotaSettings(2, 100, Long.MAX_VALUE));
        String first = service.submit(caller, spec(1)).id();
        service.submit(caller, spec(1));

        assertOverLimit("SLOPE_QUOTA_MAX_ACTIVE_RUNS", 2, 2, () -> service.submit(caller, spec(1)));
        assertEquals(2, count("SELECT count(*) FROM runs WHERE owner = ?", caller.user()), "no run stored");
        assertEquals(2, workflows.started.size(), "no workflow started");

        // A finished run frees its place; retrying it takes the place again.
        finish(first, "FAILED");
        String third = service.submit(caller, spec(1)).id();
        assertOverLimit("SLOPE_QUOTA_MAX_ACTIVE_RUNS", 2, 2,
                () -> service.retry(caller, UUID.fromString(first), Stage.PREPARE_DATA.wireName()));
        assertEquals(RunStatus.FAILED, catalogue.run(UUID.fromString(first)).orElseThrow().status());
        finish(third, "CANCELLED");
        service.retry(caller, UUID.fromString(first), Stage.PREPARE_DATA.wireName());
        assertEquals(RunStatus.QUEUED, catalogue.run(UUID.fromString(first)).orElseThrow().status());
    }

    @Test
    void ranksOverTheQuotaAre429OnSubmitAndOnAChangeOfRanks() throws Exception {
        RecordedStarts workflows = new RecordedStarts(context, null);
        RunService service = service(workflows, new QuotaSettings(10, 3, Long.MAX_VALUE));
        Caller caller = someone();
        String run = service.submit(caller, spec(2)).id();

        assertOverLimit("SLOPE_QUOTA_MAX_ACTIVE_RANKS", 3, 2, () -> service.submit(caller, spec(2)));
        assertOverLimit("SLOPE_QUOTA_MAX_ACTIVE_RANKS", 3, 2,
                () -> service.setRanks(caller, UUID.fromString(run), "{\"ranks\": 4}"));
        assertEquals(List.of(), workflows.ranksSet, "the workflow is not asked");
        assertEquals(2, catalogue.run(UUID.fromString(run)).orElseThrow().options().ranks());
        service.submit(caller, spec(1));
    }

    @Test
    void storageOverTheQuotaRefusesUploadsAndSubmits() throws Exception {
        Caller caller = someone();
        QuotaSettings quota = new QuotaSettings(10, 100, 100);
        CorpusUploads uploads = new CorpusUploads(context.getBean(Storage.class),
                context.getBean(CorpusRepository.class), context.getBean(CorpusReferences.class),
                context.getBean(CorpusSettings.class), new Quotas(quota, dataSource));
        byte[] sixty = (UUID.randomUUID() + "-" + "x".repeat(23)).getBytes(StandardCharsets.US_ASCII);
        uploads.upload(caller, new ByteArrayInputStream(sixty), (long) sixty.length, "a.txt");

        byte[] another = (UUID.randomUUID() + "-" + "y".repeat(23)).getBytes(StandardCharsets.US_ASCII);
        assertOverLimit("SLOPE_QUOTA_MAX_STORAGE_BYTES", 100, 60,
                () -> uploads.upload(caller, new ByteArrayInputStream(another), (long) another.length, "b.txt"));
        assertEquals(1, count("SELECT count(*) FROM corpora WHERE owner = ?", caller.user()), "no corpus stored");
        assertEquals(List.of(), context.getBean(Storage.class).objects().list(CorpusReferences.PREFIX
                + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(another))), "no object stored");

        // Bytes already stored cost nothing, so the same content again is fine.
        uploads.upload(caller, new ByteArrayInputStream(sixty), (long) sixty.length, "a.txt");

        RunService service = service(new RecordedStarts(context, null), new QuotaSettings(10, 100, 60));
        assertOverLimit("SLOPE_QUOTA_MAX_STORAGE_BYTES", 60, 60, () -> service.submit(caller, spec(1)));
        assertEquals(0, count("SELECT count(*) FROM runs WHERE owner = ?", caller.user()), "no run stored");
    }
}
