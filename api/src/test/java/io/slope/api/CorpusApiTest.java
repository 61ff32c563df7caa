package io.slope.api;

import static io.slope.api.ProblemAssertions.assertFieldError;
import static io.slope.api.ProblemAssertions.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** POST /api/v1/datasets: streamed to S3 under its SHA-256, stored once, 413 over the limit, usable by its uri. */
class CorpusApiTest {
    private static ApiHarness api;
    private static ObjectStore objects;

    @BeforeAll
    static void start() throws Exception {
        api = ApiHarness.get();
        objects = new ObjectStore(new S3Config(api.env.get("SLOPE_S3_ENDPOINT"), api.env.get("SLOPE_S3_ACCESS_KEY"),
                api.env.get("SLOPE_S3_SECRET_KEY"), "slope", null));
    }

    @Test
    void anUploadIsStoredUnderItsChecksumOnce() throws Exception {
        String text = "a corpus nobody else uploads " + UUID.randomUUID() + "\n".repeat(3);
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(text.getBytes(StandardCharsets.UTF_8)));
        ApiHarness.Reply first = api.post("/api/v1/datasets?filename=mine.txt", api.aliceToken, "text/plain", text);
        assertEquals(201, first.status(), first.body());
        JsonNode corpus = first.json();
        assertEquals(sha, corpus.get("id").asText());
        assertEquals(sha, corpus.get("sha256").asText());
        assertEquals(text.getBytes(StandardCharsets.UTF_8).length, corpus.get("bytes").asLong());
        assertEquals("s3://slope/corpora/" + sha, corpus.get("uri").asText());
        assertEquals("mine.txt", corpus.get("filename").asText());
        assertEquals(text, new String(objects.getBytes("corpora/" + sha).orElseThrow(), StandardCharsets.UTF_8));

        ApiHarness.Reply second = api.post("/api/v1/datasets?filename=bobs.txt", api.bobToken,
                "application/octet-stream", text);
        assertEquals(200, second.status(), "the same content is stored once");
        assertEquals(sha, second.json().get("id").asText());
        // Bob learns nothing of Alice's upload: the name he gave, not hers, and not when she uploaded it.
        assertEquals("bobs.txt", second.json().get("filename").asText());
        assertTrue(second.json().get("createdAt").asText().compareTo(corpus.get("createdAt").asText()) > 0,
                second::body);
        ApiHarness.Reply unnamed = api.post("/api/v1/datasets", api.bobToken, "application/octet-stream", text);
        assertTrue(unnamed.json().path("filename").isMissingNode() || unnamed.json().get("filename").isNull(),
                unnamed::body);
        assertTrue(objects.list("uploads/").isEmpty(), "no temporary upload is left behind");
    }

    @Test
    void anUploadOverTheLimitIs413WithOrWithoutContentLength() throws Exception {
        byte[] big = new byte[(int) ApiHarness.MAX_CORPUS_BYTES + 1];
        java.util.Arrays.fill(big, (byte) 'x');
        JsonNode declared = assertProblem(api.post("/api/v1/datasets", api.aliceToken, "text/plain",
                new String(big, StandardCharsets.US_ASCII)), 413);
        assertTrue(declared.get("detail").asText().contains("SLOPE_CORPUS_MAX_BYTES"), declared::toString);
        // Chunked: no Content-Length, so the limit is found while streaming. curl, because it reads an early answer
        // while still sending (the JDK's HttpClient waits for its own body to be taken whole).
        Path file = Files.createTempFile("big-corpus", ".txt");
        Files.write(file, big);
        Process curl = new ProcessBuilder("curl", "-s", "--max-time", "60", "-H", "Authorization: Bearer "
                + api.aliceToken, "-H", "Content-Type: text/plain", "-H", "Transfer-Encoding: chunked",
                "--data-binary", "@" + file, "-w", "\n%{http_code} %{content_type}", api.base + "/api/v1/datasets")
                .redirectErrorStream(true).start();
        String[] lines = new String(curl.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip().split("\n");
        assertEquals(0, curl.waitFor());
        assertEquals("413 application/problem+json", lines[lines.length - 1]);
        assertTrue(lines[0].contains("larger than " + ApiHarness.MAX_CORPUS_BYTES), lines[0]);
        assertTrue(objects.list("uploads/").isEmpty(), "the partial upload is removed");
    }

    @Test
    void badUploadsAndBadCorpusReferencesNameTheField() throws Exception {
        assertFieldError(api.post("/api/v1/datasets", api.aliceToken, "text/plain", ""), "body", "not specified");
        assertFieldError(api.post("/api/v1/datasets?filename=a/b", api.aliceToken, "text/plain", "x"), "filename",
                "without '/'");
        assertProblem(api.post("/api/v1/datasets", api.aliceToken, "application/json", "{}"), 415);
        String unknown = "s3://slope/corpora/" + "0".repeat(64);
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("bad-corpus", unknown, 10)), "data.corpus[0]", "POST /api/v1/datasets");
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("local-corpus", "/etc/passwd", 10)), "data.corpus[0]", "cannot be read");
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("other-bucket", "s3://elsewhere/x.txt", 10)), "data.corpus[0]", "bucket slope");
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                ApiHarness.tinySpec("other-key", "s3://slope/runs/x", 10)), "data.corpus[0]", "only uploaded");
    }

    /** data.validation (held-out files) takes uploads as data.corpus does, and its bad entries are named as its. */
    @Test
    void heldOutFilesAreUploadsCheckedLikeTheCorpus() throws Exception {
        String corpus = api.corpus();
        String heldOut = api.uploadCorpus(api.aliceToken, "Held-out text nobody trains on " + UUID.randomUUID()
                + "\n".repeat(3));
        String unknown = "s3://slope/corpora/" + "0".repeat(64);
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                withValidation("bad-held-out", corpus, heldOut + "\", \"" + unknown)), "data.validation[1]",
                "POST /api/v1/datasets");
        assertFieldError(api.post("/api/v1/runs", api.aliceToken, "application/json",
                withValidation("local-held-out", corpus, "/etc/passwd")), "data.validation[0]", "cannot be read");
        assertFieldError(api.post("/api/v1/runs", api.bobToken, "application/json",
                withValidation("other-key", corpus, "s3://slope/runs/x")), "data.validation[0]", "only uploaded");

        // A good one is stored as given; no worker runs it here, so it stays QUEUED.
        ApiHarness.Reply accepted = api.post("/api/v1/runs", api.aliceToken, "application/json",
                withValidation("held-out", corpus, heldOut));
        assertEquals(201, accepted.status(), accepted.body());
        JsonNode data = accepted.json().at("/spec/data");
        assertEquals(heldOut, data.at("/validation/0").asText(), data::toString);
        assertTrue(data.path("valFraction").isMissingNode(), data::toString);
    }

    /** {@link ApiHarness#tinySpec} with {@code data.validation} ["validation"] instead of data.valFraction. */
    private static String withValidation(String name, String corpus, String validation) {
        String spec = ApiHarness.tinySpec(name, corpus, 10);
        String fraction = "\"valFraction\": 0.1";
        assertTrue(spec.contains(fraction), spec);
        return spec.replace(fraction, "\"validation\": [\"" + validation + "\"]");
    }
}
