package io.slope.activities.data;

import io.slope.storage.ObjectStore;
import io.slope.engine.data.Corpus;
import io.slope.engine.data.InvalidCorpusException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads a spec's {@code data.corpus} entries: {@code s3://<bucket>/<key>} (one object) or {@code s3://<bucket>/<prefix>/}
 * (every object under it, in key order) from the configured object store, or a local path (the one-machine stack),
 * resolved against a base folder. S3 corpora are downloaded into a scratch folder first, keeping their key structure,
 * so a folder of objects reads exactly like a folder of files.
 */
public final class CorpusSource {
    private final ObjectStore objects;
    private final Path localBase;

    public CorpusSource(ObjectStore objects, Path localBase) {
        this.objects = objects;
        this.localBase = localBase;
    }

    /** @throws InvalidCorpusException naming the entry when it does not exist or holds no text */
    public Corpus read(List<String> entries, Path scratch) throws IOException {
        List<Path> paths = new ArrayList<>();
        for (int i = 0; i < entries.size(); i++) {
            String entry = entries.get(i);
            String field = "data.corpus[" + i + "]";
            if (entry.startsWith("s3://")) {
                paths.add(download(entry, field, Files.createDirectories(scratch.resolve("corpus-" + i))));
            } else {
                Path path = localBase.resolve(entry).normalize();
                if (!Files.exists(path)) {
                    throw new InvalidCorpusException(field + ": " + entry + " does not exist (resolved to " + path
                            + "); give an s3:// URI or a path readable by the pipeline worker");
                }
                paths.add(path);
            }
        }
        return Corpus.read(paths);
    }

    private Path download(String uri, String field, Path into) throws IOException {
        String rest = uri.substring("s3://".length());
        int slash = rest.indexOf('/');
        String bucket = slash < 0 ? rest : rest.substring(0, slash);
        String key = slash < 0 ? "" : rest.substring(slash + 1);
        if (!bucket.equals(objects.bucket())) {
            throw new InvalidCorpusException(field + ": " + uri + " is in bucket " + bucket + ", but this service "
                    + "reads corpora from bucket " + objects.bucket() + "; upload it there (POST /api/v1/datasets)");
        }
        if (!key.isEmpty() && !key.endsWith("/")) {
            Path file = into.resolve(Path.of(key).getFileName().toString());
            if (!objects.download(key, file)) {
                throw new InvalidCorpusException(field + ": " + uri + " does not exist");
            }
            return file;
        }
        List<String> keys = objects.list(key);
        if (keys.isEmpty()) {
            throw new InvalidCorpusException(field + ": no objects under " + uri);
        }
        for (String k : keys) {
            Path file = into.resolve(k.substring(key.length())).normalize();
            if (!file.startsWith(into)) {
                throw new InvalidCorpusException(field + ": object key " + k + " escapes its prefix");
            }
            Files.createDirectories(file.getParent());
            objects.download(k, file);
        }
        return into;
    }
}
