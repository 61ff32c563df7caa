package io.slope.activities.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.List;

/**
 * {@code manifest.json} of a run's exports ({@code runs/<runId>/export/}): every exported file with its kind
 * ({@code hf}, {@code slope}), size and SHA-256. The export stage writes it last; finalize verifies each object against
 * it and registers the files as the run's artifacts.
 */
public record ExportManifest(List<File> files) {
    public static final String NAME = "manifest.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    public record File(String path, String kind, long bytes, String sha256) {}

    public ExportManifest {
        files = List.copyOf(files);
    }

    public byte[] toJson() {
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(this);
        } catch (IOException e) {
            throw new IllegalStateException("records always serialise", e);
        }
    }

    public static ExportManifest parse(byte[] json) throws IOException {
        return JSON.readValue(json, ExportManifest.class);
    }

    public static String prefix(String runId) {
        return "runs/" + runId + "/export/";
    }
}
