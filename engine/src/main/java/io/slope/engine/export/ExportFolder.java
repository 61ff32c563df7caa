package io.slope.engine.export;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.slope.engine.checkpoint.DurableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * An export folder written in a staging folder beside its final name and renamed into place once every file is on
 * disk, so a crash never leaves a half-written export under the final name (as datasets and checkpoints are published).
 */
final class ExportFolder {
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ExportFolder() {}

    /** Writes {@code content} into a staging folder and publishes it as {@code target}, which must not exist. */
    static void publish(Path target, DurableFiles.DirectoryContent content) throws IOException {
        if (Files.exists(target)) {
            throw new IllegalArgumentException("export folder " + target + " already exists; remove it or choose "
                    + "another");
        }
        DurableFiles.createDirectoryAtomically(target, content);
    }

    static void writeJson(Path file, JsonNode json) throws IOException {
        try {
            writeBytes(file, JSON.writeValueAsBytes(json));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree always serialises", e);
        }
    }

    static void writeText(Path file, String text) throws IOException {
        writeBytes(file, text.getBytes(StandardCharsets.UTF_8));
    }

    private static void writeBytes(Path file, byte[] content) throws IOException {
        Files.write(file, content, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        DurableFiles.fsync(file);
    }
}
