package io.slope.engine.export;

import java.nio.file.Path;

/** An export folder that cannot be read: the message names the file and what is wrong with it. */
public final class InvalidExportException extends RuntimeException {
    public InvalidExportException(Path file, String problem) {
        super(file + ": " + problem);
    }
}
