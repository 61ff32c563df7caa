package io.slope.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.minio.StatObjectArgs;
import io.slope.localservices.S3Server;
import io.slope.testinfra.TestServices;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What slope needs from an S3 server, checked against the configured one (S3Proxy here; MinIO in compose): multipart
 * uploads, presigned GET and PUT, integrity (content checksums; the ETag of a single-part object is its MD5), ranged
 * GETs, listing, and idempotent deletes.
 */
class S3ConformanceTest {
    private static ObjectStore store;

    @BeforeAll
    static void bucket() throws Exception {
        S3Server s3 = TestServices.get().s3();
        store = new ObjectStore(new S3Config(s3.endpoint(), S3Server.ACCESS_KEY, S3Server.SECRET_KEY, "conformance",
                null));
        store.ensureBucket();
    }

    @Test
    void multipartUploadRoundTripsByteForByte(@TempDir Path dir) throws Exception {
        byte[] content = new byte[(int) (ObjectStore.PART_SIZE * 2 + 12345)];
        new Random(1).nextBytes(content);
        Path file = dir.resolve("big.bin");
        Files.write(file, content);
        store.putFile("multipart/big.bin", file);
        var stat = store.client().statObject(StatObjectArgs.builder().bucket(store.bucket())
                .object("multipart/big.bin").build());
        assertEquals(content.length, stat.size());
        assertTrue(stat.etag().endsWith("-3"), "a 3-part upload has a multipart ETag, got " + stat.etag());
        Path back = dir.resolve("back.bin");
        assertTrue(store.download("multipart/big.bin", back));
        assertEquals(sha256(content), sha256(Files.readAllBytes(back)));
    }

    @Test
    void singlePartEtagIsTheContentMd5() throws Exception {
        byte[] content = "checksummed content\n".getBytes();
        store.putBytes("etag/small.txt", content);
        var stat = store.client().statObject(StatObjectArgs.builder().bucket(store.bucket())
                .object("etag/small.txt").build());
        String md5 = HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(content));
        assertEquals(md5, stat.etag().replace("\"", ""));
    }

    @Test
    void rangedGetReturnsExactlyTheRange() throws Exception {
        byte[] content = new byte[100_000];
        new Random(2).nextBytes(content);
        store.putBytes("range/blob", content);
        byte[] part = store.getRange("range/blob", 4321, 1000);
        assertArrayEquals(java.util.Arrays.copyOfRange(content, 4321, 5321), part);
    }

    @Test
    void presignedUrlsWorkWithoutCredentials() throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        byte[] content = "uploaded through a presigned PUT".getBytes();
        String put = store.presignPut("presign/object.txt", Duration.ofMinutes(5));
        HttpResponse<String> putResponse = http.send(HttpRequest.newBuilder(URI.create(put))
                .PUT(HttpRequest.BodyPublishers.ofByteArray(content)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, putResponse.statusCode(), putResponse.body());
        String get = store.presignGet("presign/object.txt", Duration.ofMinutes(5));
        HttpResponse<byte[]> getResponse = http.send(HttpRequest.newBuilder(URI.create(get)).build(),
                HttpResponse.BodyHandlers.ofByteArray());
        assertEquals(200, getResponse.statusCode());
        assertArrayEquals(content, getResponse.body());
        // Tampering with the signed URL is refused.
        HttpResponse<String> tampered = http.send(HttpRequest.newBuilder(URI.create(get.replace("object.txt",
                "other.txt"))).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(403, tampered.statusCode());
    }

    @Test
    void listingAndIdempotentDeletes() throws Exception {
        store.putBytes("list/b", new byte[] {2});
        store.putBytes("list/a", new byte[] {1});
        store.putBytes("list/sub/c", new byte[] {3});
        assertEquals(List.of("list/a", "list/b", "list/sub/c"), store.list("list/"));
        store.delete("list/a");
        store.delete("list/a");
        assertFalse(store.exists("list/a"));
        assertTrue(store.getBytes("list/a").isEmpty());
        assertEquals(List.of("list/b", "list/sub/c"), store.list("list/"));
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }
}
