package io.slope.engine.data;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.List;
import java.util.Objects;

/**
 * {@code dataset.json}: what a prepared dataset holds and where it came from. The validation split is the last
 * {@code validationTokens} of the token stream, so it never depends on shuffling or on the shard size. It is the last
 * {@code valFraction} of {@code source}'s tokens, or, when {@code heldOutSource} is given ({@code valFraction} 0), the
 * tokens of those held-out files, which follow {@code source}'s in the stream.
 */
public record DatasetManifest(int formatVersion, String tokenizer, int vocabSize, double valFraction,
        long trainTokens, long validationTokens, List<ShardInfo> trainShards, List<ShardInfo> validationShards,
        Source source, @JsonInclude(JsonInclude.Include.NON_NULL) Source heldOutSource) {
    public static final int FORMAT_VERSION = 1;

    /**
     * The corpus: a one-line description, document count, the files read and those skipped (with why), and
     * {@code corpusSha256}: SHA-256 over every document's UTF-8 bytes each followed by one NUL byte, which identifies
     * the text independently of the tokenizer and of file names.
     */
    public record Source(String description, long documents, List<String> files, List<String> skippedFiles,
            String corpusSha256) {
        public Source {
            files = List.copyOf(Objects.requireNonNull(files, "files"));
            skippedFiles = List.copyOf(Objects.requireNonNull(skippedFiles, "skippedFiles"));
        }
    }

    public DatasetManifest {
        Objects.requireNonNull(tokenizer, "tokenizer");
        trainShards = List.copyOf(Objects.requireNonNull(trainShards, "trainShards"));
        validationShards = List.copyOf(Objects.requireNonNull(validationShards, "validationShards"));
        Objects.requireNonNull(source, "source");
    }
}
