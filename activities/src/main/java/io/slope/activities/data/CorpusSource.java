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
 * Reads a spec's {@code data.corpus} or {@code data.validation} entries: {@code s3://<bucket>/<key>} (one object) or
 * {@code s3://<bucket>/<prefix>/} (every object under it, in key order) from the configured object store, or a local
 * path (the one-machine stack), resolved against a base folder. S3 corpora are downloaded into a scratch folder first,
 * keeping their key structure, so a folder of objects reads exactly like a folder of files.
 */
public final class CorpusSource {
    private final ObjectStore objects;
    private final Path localBase;

    public CorpusSource(ObjectStore objects, Path localBase) {
        this.objects = objects;
        this.localBase = localBase;
    }

    /** The entries of {@code data.corpus}: {@link #read(String, List, Path)} for that field. */
    public Corpus read(List<String> entries, Path scratch) throws IOException {
        return read("data.corpus", entries, scratch);
    }

    /**
     * The entries of the spec's list {@code field} ({@code data.corpus} or {@code data.validation}); S3 objects are
     * downloaded under {@code scratch}, into a folder of their own per field and entry.
     *
     * @throws InvalidCorpusException naming the entry ({@code field[i]}) when it does not exist or holds no text
     */
    public Corpus read(String field, List<String> entries, Path scratch) throws IOException {
        String folder = field.substring(field.lastIndexOf('.') + 1);
        List<Path> paths = new ArrayList<>();
        for (int i = 0; i < entries.size(); i++) {
            String entry = entries.get(i);
            String entryField = field + "[" + i + "]";
            if (entry.startsWith("s3://")) {
                paths.add(download(entry, entryField, Files.createDirectories(scratch.resolve(folder + "-" + i))));
            } else {
                Path path = localBase.resolve(entry).normalize();
                if (!Files.exists(path)) {
                    throw new InvalidCorpusException(entryField + ": " + entry + " does not exist (resolved to "
                            + path + "); give an s3:// URI or a path readable by the pipeline worker");
                }
                paths.add(path);
            }
        }
        return Corpus.read(paths);
    }

    /**
     * Refuses held-out entries that reach an object of the store that {@code data.corpus} reads too (a held-out object
     * under a corpus prefix, say): held-out text must never be trained on. Local paths are compared when the dataset
     * is prepared ({@link io.slope.engine.data.Dataset#prepare(Corpus, Corpus, io.slope.engine.data.Tokenizer, long,
     * Path)}); entries that name no object of this store are left to {@link #read(String, List, Path)}.
     *
     * @throws InvalidCorpusException naming {@code data.validation[i]} and the {@code data.corpus} entry
     */
    public void requireDisjoint(List<String> corpus, List<String> validation) throws IOException {
        List<List<String>> trained = new ArrayList<>();
        for (String entry : corpus) {
            trained.add(objectKeys(entry));
        }
        for (int i = 0; i < validation.size(); i++) {
            for (String key : objectKeys(validation.get(i))) {
                for (int j = 0; j < trained.size(); j++) {
                    if (trained.get(j).contains(key)) {
                        throw new InvalidCorpusException("data.validation[" + i + "]: s3://" + objects.bucket() + "/"
                                + key + " is also read by data.corpus[" + j + "] (" + corpus.get(j) + "); held-out "
                                + "text must not be trained on, so list it in one of the two only");
                    }
                }
            }
        }
    }

    /** The keys of the objects an entry reads; none for a local path or another bucket. */
    private List<String> objectKeys(String entry) throws IOException {
        if (!entry.startsWith("s3://")) {
            return List.of();
        }
        S3Uri uri = S3Uri.parse(entry);
        if (!uri.bucket().equals(objects.bucket())) {
            return List.of();
        }
        return uri.isObject() ? List.of(uri.key()) : objects.list(uri.key());
    }

    /** {@code s3://<bucket>/<key>}: one object, or every object under a key that is empty or ends in '/'. */
    private record S3Uri(String bucket, String key) {
        static S3Uri parse(String uri) {
            String rest = uri.substring("s3://".length());
            int slash = rest.indexOf('/');
            return new S3Uri(slash < 0 ? rest : rest.substring(0, slash), slash < 0 ? "" : rest.substring(slash + 1));
        }

        boolean isObject() {
            return !key.isEmpty() && !key.endsWith("/");
        }
    }

    private Path download(String uri, String field, Path into) throws IOException {
        S3Uri parsed = S3Uri.parse(uri);
        String bucket = parsed.bucket();
        String key = parsed.key();
        if (!bucket.equals(objects.bucket())) {
            throw new InvalidCorpusException(field + ": " + uri + " is in bucket " + bucket + ", but this service "
                    + "reads corpora from bucket " + objects.bucket() + "; upload it there (POST /api/v1/datasets)");
        }
        if (parsed.isObject()) {
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
