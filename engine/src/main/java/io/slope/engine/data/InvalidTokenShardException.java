package io.slope.engine.data;

import java.nio.file.Path;

/** A token shard or dataset that cannot be used: the message names the file and what is wrong with it. */
public final class InvalidTokenShardException extends RuntimeException {
    public InvalidTokenShardException(Path file, String problem) {
        super(file + ": " + problem);
    }
}
