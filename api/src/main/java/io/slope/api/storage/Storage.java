package io.slope.api.storage;

import io.micronaut.context.annotation.Context;
import io.slope.storage.ObjectStore;
import io.slope.storage.S3Config;
import io.slope.api.config.StorageSettings;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.time.Instant;

/**
 * The object store as the API uses it: one client for the endpoint the API reaches, and one that only signs URLs for
 * the public endpoint users reach (signing needs no request when the region is known). The bucket is created on
 * start when missing, so a fresh stack works without a separate init step.
 */
@Context
public class Storage {
    private final ObjectStore objects;
    private final ObjectStore publicSigner;
    private final Duration presignExpiry;

    public Storage(StorageSettings settings) {
        S3Config internal = new S3Config(required(settings.endpoint(), "endpoint"), required(settings.accessKey(),
                "access-key"), required(settings.secretKey(), "secret-key"), settings.bucket(), settings.region());
        String publicEndpoint = settings.publicEndpoint() == null || settings.publicEndpoint().isBlank()
                ? settings.endpoint() : settings.publicEndpoint();
        this.objects = new ObjectStore(internal);
        this.publicSigner = new ObjectStore(new S3Config(publicEndpoint, internal.accessKey(), internal.secretKey(),
                internal.bucket(), internal.region()));
        this.presignExpiry = settings.presignExpiry();
        try {
            objects.ensureBucket();
        } catch (IOException e) {
            throw new UncheckedIOException("the object store at " + settings.endpoint() + " is not usable: "
                    + e.getMessage(), e);
        }
    }

    public ObjectStore objects() {
        return objects;
    }

    public String bucket() {
        return objects.bucket();
    }

    /** A presigned GET for the public endpoint, and when it stops working. */
    public SignedUrl presignGet(String key) throws IOException {
        Instant expires = Instant.now().plus(presignExpiry);
        return new SignedUrl(publicSigner.presignGet(key, presignExpiry), expires);
    }

    public record SignedUrl(String url, Instant expiresAt) {}

    private static String required(String value, String name) {
        if (value == null || value.isBlank()) {
            throw new IllegalStateException("slope.s3." + name + " is not set (environment SLOPE_S3_"
                    + name.toUpperCase(java.util.Locale.ROOT).replace('-', '_') + ")");
        }
        return value;
    }
}
