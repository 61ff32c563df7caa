package io.slope.engine.checkpoint;

import java.io.IOException;
import java.nio.file.Path;

/** A file that is not valid safetensors; the message names the file and what is wrong. */
public final class SafetensorsFormatException extends IOException {
    public SafetensorsFormatException(Path file, String problem) {
        super(file + ": not a valid safetensors file: " + problem);
    }
}
