package io.slope.storage;

import io.minio.BucketExistsArgs;
import io.minio.DownloadObjectArgs;
import io.minio.GetObjectArgs;
import io.minio.GetPresignedObjectUrlArgs;
import io.minio.Http;
import io.minio.ListObjectsArgs;
import io.minio.MakeBucketArgs;
import io.minio.MinioClient;
import io.minio.PutObjectArgs;
import io.minio.RemoveObjectArgs;
import io.minio.Result;
import io.minio.StatObjectArgs;
import io.minio.UploadObjectArgs;
import io.minio.errors.ErrorResponseException;
import io.minio.errors.MinioException;
import io.minio.messages.Item;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The few object operations slope needs, on one bucket, through the MinIO Java client (any S3 server). Failures are
 * {@link IOException}s naming the key; a missing object is an empty result, not an error.
 */
public final class ObjectStore {
    /** Parts of a multipart upload: the S3 minimum is 5 MiB; larger parts mean fewer requests for big shards. */
    public static final long PART_SIZE = 16L << 20;

    private final MinioClient client;
    private final S3Config config;

    public ObjectStore(S3Config config) {
        this.config = config;
        this.client = MinioClient.builder().endpoint(config.endpoint()).region(config.region())
                .credentials(config.accessKey(), config.secretKey()).build();
    }

    public S3Config config() {
        return config;
    }

    public String bucket() {
        return config.bucket();
    }

    /** Creates the bucket unless it exists; processes starting together may race to create it, and that is fine. */
    public void ensureBucket() throws IOException {
        call("create bucket " + bucket(), () -> {
            if (!client.bucketExists(BucketExistsArgs.builder().bucket(bucket()).build())) {
                try {
                    client.makeBucket(MakeBucketArgs.builder().bucket(bucket()).build());
                } catch (ErrorResponseException e) {
                    String code = e.errorResponse().code();
                    if (!code.equals("BucketAlreadyOwnedByYou") && !code.equals("BucketAlreadyExists")) {
                        throw e;
                    }
                }
            }
            return null;
        });
    }

    /** Uploads a file; files above {@link #PART_SIZE} go up as multipart uploads. */
    public void putFile(String key, Path file) throws IOException {
        call("upload " + file + " to " + key, () -> client.uploadObject(UploadObjectArgs.builder().bucket(bucket())
                .object(key).filename(file.toString(), PART_SIZE).build()));
    }

    public void putBytes(String key, byte[] content) throws IOException {
        call("put " + key, () -> client.putObject(PutObjectArgs.builder().bucket(bucket()).object(key)
                .data(content, content.length).build()));
    }

    /**
     * Uploads a stream of unknown length as a multipart upload of {@code partSize} parts (at least 5 MiB), so that
     * nothing but one part is ever held in memory. Used by the API's corpus upload.
     */
    public void putStream(String key, InputStream in, long partSize) throws IOException {
        call("upload stream to " + key, () -> client.putObject(PutObjectArgs.builder().bucket(bucket()).object(key)
                .stream(in, null, partSize).build()));
    }

    /** Server-side copy within the bucket (one request: objects up to 5 GiB). */
    public void copy(String fromKey, String toKey) throws IOException {
        call("copy " + fromKey + " to " + toKey, () -> client.copyObject(io.minio.CopyObjectArgs.builder()
                .bucket(bucket()).object(toKey)
                .source(io.minio.SourceObject.builder().bucket(bucket()).object(fromKey).build()).build()));
    }

    /** The whole object, or empty when there is none. */
    public Optional<byte[]> getBytes(String key) throws IOException {
        return callOptional("get " + key, () -> {
            try (InputStream in = client.getObject(GetObjectArgs.builder().bucket(bucket()).object(key).build())) {
                return in.readAllBytes();
            }
        });
    }

    /** {@code length} bytes from {@code offset} (a ranged GET). */
    public byte[] getRange(String key, long offset, long length) throws IOException {
        return call("get bytes " + offset + "+" + length + " of " + key, () -> {
            try (InputStream in = client.getObject(GetObjectArgs.builder().bucket(bucket()).object(key)
                    .offset(offset).length(length).build())) {
                return in.readAllBytes();
            }
        });
    }

    /** Downloads to {@code file} (replaced atomically when complete); false when the object does not exist. */
    public boolean download(String key, Path file) throws IOException {
        Path temp = file.resolveSibling("." + file.getFileName() + ".download");
        Files.deleteIfExists(temp);
        Optional<Object> found = callOptional("download " + key, () -> {
            client.downloadObject(DownloadObjectArgs.builder().bucket(bucket()).object(key)
                    .filename(temp.toString()).build());
            return Boolean.TRUE;
        });
        if (found.isEmpty()) {
            return false;
        }
        Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return true;
    }

    /** The object's size, or empty when it does not exist. */
    public Optional<Long> size(String key) throws IOException {
        return callOptional("stat " + key, () -> client.statObject(StatObjectArgs.builder().bucket(bucket())
                .object(key).build()).size());
    }

    public boolean exists(String key) throws IOException {
        return size(key).isPresent();
    }

    /** Keys under a prefix, recursively, in lexicographic order. */
    public List<String> list(String prefix) throws IOException {
        return call("list " + prefix, () -> {
            List<String> keys = new ArrayList<>();
            for (Result<Item> result : client.listObjects(ListObjectsArgs.builder().bucket(bucket()).prefix(prefix)
                    .recursive(true).build())) {
                keys.add(result.get().objectName());
            }
            keys.sort(null);
            return keys;
        });
    }

    /** Deletes one object; deleting a missing one is not an error (S3 semantics), so deletion is idempotent. */
    public void delete(String key) throws IOException {
        call("delete " + key, () -> {
            client.removeObject(RemoveObjectArgs.builder().bucket(bucket()).object(key).build());
            return null;
        });
    }

    /** A URL anyone can GET the object with until it expires (at most 7 days, the SigV4 limit). */
    public String presignGet(String key, Duration expiry) throws IOException {
        return call("presign " + key, () -> client.getPresignedObjectUrl(GetPresignedObjectUrlArgs.builder()
                .method(Http.Method.GET).bucket(bucket()).object(key)
                .expiry((int) expiry.toSeconds(), TimeUnit.SECONDS).build()));
    }

    /** A URL anyone can PUT the object with until it expires. */
    public String presignPut(String key, Duration expiry) throws IOException {
        return call("presign upload of " + key, () -> client.getPresignedObjectUrl(GetPresignedObjectUrlArgs.builder()
                .method(Http.Method.PUT).bucket(bucket()).object(key)
                .expiry((int) expiry.toSeconds(), TimeUnit.SECONDS).build()));
    }

    MinioClient client() {
        return client;
    }

    private interface S3Call<T> {
        T run() throws Exception;
    }

    private <T> T call(String what, S3Call<T> body) throws IOException {
        try {
            return body.run();
        } catch (IOException e) {
            throw new IOException("s3 " + bucket() + ": " + what + ": " + e.getMessage(), e);
        } catch (MinioException e) {
            throw new IOException("s3 " + bucket() + ": " + what + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException("s3 " + bucket() + ": " + what + ": " + e, e);
        }
    }

    private <T> Optional<T> callOptional(String what, S3Call<T> body) throws IOException {
        try {
            return Optional.of(call(what, body));
        } catch (IOException e) {
            if (e.getCause() instanceof ErrorResponseException response
                    && List.of("NoSuchKey", "NoSuchObject", "NotFound").contains(response.errorResponse().code())) {
                return Optional.empty();
            }
            throw e;
        }
    }
}
