package io.slope.api.corpora;

import io.micronaut.http.HttpStatus;
import io.slope.api.auth.Caller;
import io.slope.api.config.CorpusSettings;
import io.slope.api.corpora.CorpusRepository.CorpusRow;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.quota.Quotas;
import io.slope.api.quota.Quotas.Demand;
import io.slope.api.storage.Storage;
import io.slope.storage.ObjectStore;
import jakarta.inject.Singleton;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.SQLException;
import java.time.Instant;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Corpus uploads: the request body goes to the object store as it arrives (a multipart upload to a temporary key,
 * hashed on the way), then is copied to its content address {@code corpora/<sha256>}; the same content uploaded twice
 * is stored once. Past the size limit the upload stops with a 413, over the uploader's storage quota it is a 429, and
 * either way the temporary object is removed.
 */
@Singleton
public class CorpusUploads {
    /** Parts held in memory while streaming: the S3 minimum is 5 MiB. */
    private static final long PART_SIZE = 8L << 20;

    private final Storage storage;
    private final CorpusRepository corpora;
    private final CorpusReferences references;
    private final CorpusSettings settings;
    private final Quotas quotas;

    public CorpusUploads(Storage storage, CorpusRepository corpora, CorpusReferences references,
            CorpusSettings settings, Quotas quotas) {
        this.storage = storage;
        this.corpora = corpora;
        this.references = references;
        this.settings = settings;
        this.quotas = quotas;
    }

    public record Uploaded(CorpusRow corpus, String uri, boolean created) {}

    /** Each user's uploads in flight; a user's entry goes when their last one ends. */
    private final ConcurrentHashMap<String, Integer> inFlight = new ConcurrentHashMap<>();

    /** Stores the body as a corpus; a 429 when the caller has {@code maxConcurrentUploads} in flight already. */
    public Uploaded upload(Caller caller, InputStream body, Long declaredLength, String filename)
            throws IOException, SQLException {
        int[] before = new int[1];
        inFlight.compute(caller.user(), (user, n) -> {
            before[0] = n == null ? 0 : n;
            return before[0] < settings.maxConcurrentUploads() ? before[0] + 1 : n;
        });
        if (before[0] >= settings.maxConcurrentUploads()) {
            throw ProblemException.overLimit(new Problem.Limit("SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS",
                    settings.maxConcurrentUploads(), (long) before[0]), caller.user() + " has " + before[0] + " uploads in "
                    + "flight; the limit is " + settings.maxConcurrentUploads() + " at a time "
                    + "(SLOPE_CORPUS_MAX_CONCURRENT_UPLOADS): send this one when one of them has finished");
        }
        try {
            return store(caller, body, declaredLength, filename);
        } finally {
            inFlight.computeIfPresent(caller.user(), (user, n) -> n > 1 ? n - 1 : null);
        }
    }

    private Uploaded store(Caller caller, InputStream body, Long declaredLength, String filename)
            throws IOException, SQLException {
        if (declaredLength != null && declaredLength > settings.maxBytes()) {
            throw tooLarge(declaredLength);
        }
        if (filename != null && (filename.length() > 255 || filename.contains("/") || filename.isBlank())) {
            throw ProblemException.badField("filename", "a file name without '/', 1 to 255 characters");
        }
        // An empty body is refused before reading: the server's stream of a zero-length body never ends.
        if (body == null || (declaredLength != null && declaredLength == 0)) {
            throw ProblemException.badField("body", "the corpus is empty; send the file's bytes as the request body");
        }
        ObjectStore objects = storage.objects();
        String temporary = "uploads/" + UUID.randomUUID();
        HashingLimitedStream in = new HashingLimitedStream(body, settings.maxBytes());
        try {
            objects.putStream(temporary, in, PART_SIZE);
        } catch (IOException | RuntimeException e) {
            objects.delete(temporary);
            if (in.overLimit) {
                drain(body);
                throw tooLarge(null);
            }
            throw e;
        }
        if (in.count == 0) {
            objects.delete(temporary);
            throw ProblemException.badField("body", "the corpus is empty; send the file's bytes as the request body");
        }
        String sha256 = HexFormat.of().formatHex(in.digest.digest());
        String key = CorpusReferences.PREFIX + sha256;
        CorpusRepository.Stored stored;
        try {
            stored = corpora.insertIfAbsent(sha256, caller.user(), key, in.count, filename, c -> {
                // Content someone already stored costs nothing; new content counts against the uploader's storage.
                quotas.admit(c, caller.user(), Demand.bytes(in.count));
                objects.copy(temporary, key);
            });
        } finally {
            objects.delete(temporary);
        }
        CorpusRow row = stored.row();
        if (!row.owner().equals(caller.user())) {
            // Someone else's upload of the same bytes: their file name and time are theirs, not the caller's.
            row = new CorpusRow(row.id(), caller.user(), row.objectKey(), row.bytes(), filename, Instant.now());
        }
        return new Uploaded(row, references.uri(sha256), stored.created());
    }

    /**
     * Reads what is left of a refused body, up to the limit again, so that clients that read the answer only after
     * sending everything (the JDK's HttpClient, for one) get the 413 instead of a stalled connection.
     */
    private void drain(InputStream body) {
        try {
            long left = settings.maxBytes();
            byte[] buffer = new byte[64 * 1024];
            int n;
            while (left > 0 && (n = body.read(buffer, 0, (int) Math.min(buffer.length, left))) > 0) {
                left -= n;
            }
        } catch (IOException e) {
            // the client has gone; nothing to answer
        }
    }

    private ProblemException tooLarge(Long declared) {
        return new ProblemException(HttpStatus.REQUEST_ENTITY_TOO_LARGE, "corpus-too-large", "the corpus "
                + (declared == null ? "is larger than " : "is " + declared + " bytes; the limit is ")
                + settings.maxBytes() + " bytes (SLOPE_CORPUS_MAX_BYTES); split it into several uploads and list "
                + "each uri in data.corpus", List.of(),
                new Problem.Limit("SLOPE_CORPUS_MAX_BYTES", settings.maxBytes(), declared));
    }

    /** Counts and hashes what passes through; fails once more than {@code limit} bytes have come. */
    private static final class HashingLimitedStream extends FilterInputStream {
        private final MessageDigest digest;
        private final long limit;
        private long count;
        private boolean overLimit;

        HashingLimitedStream(InputStream in, long limit) {
            super(in);
            this.limit = limit;
            try {
                this.digest = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("every JDK has SHA-256", e);
            }
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) {
                digest.update((byte) b);
                counted(1);
            }
            return b;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            int n = super.read(buffer, offset, length);
            if (n > 0) {
                digest.update(buffer, offset, n);
                counted(n);
            }
            return n;
        }

        private void counted(int n) throws IOException {
            count += n;
            if (count > limit) {
                overLimit = true;
                throw new IOException("corpus larger than " + limit + " bytes");
            }
        }
    }
}
