package io.slope.cli.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code slope download ID [--only hf/] [--out DIR]}: fetches a finished run's exported files through their presigned
 * URLs and checks each against the SHA-256 the run recorded; a mismatch fails the command and removes the file.
 */
@Command(name = "download", mixinStandardHelpOptions = true,
        description = "Download a run's exported files and verify their checksums.")
public final class DownloadCommand implements Callable<Integer> {
    @Mixin
    ClientOptions options;

    @Parameters(paramLabel = "ID", description = "the run's id")
    String id;

    @Option(names = "--only", paramLabel = "PREFIX", description = "only files under this path, e.g. hf/")
    String only;

    @Option(names = "--out", paramLabel = "DIR", description = "where to put them (default: ./<run name>-<id>)")
    Path out;

    @Override
    public Integer call() throws IOException {
        ApiClient api = options.client();
        JsonNode run = api.get("/api/v1/runs/" + id);
        Path folder = out != null ? out : Path.of(run.get("name").asText() + "-" + id.substring(0, 8));
        int files = 0;
        for (JsonNode artifact : api.get("/api/v1/runs/" + id + "/artifacts").get("items")) {
            String path = artifact.get("path").asText();
            if (only != null && !path.startsWith(only)) {
                continue;
            }
            Path target = folder.resolve(path).normalize();
            if (!target.startsWith(folder.normalize())) {
                throw new IllegalStateException("artifact path " + path + " leaves the download folder");
            }
            Files.createDirectories(target.getParent());
            api.download(artifact.get("url").asText(), target);
            String actual = sha256(target);
            if (!actual.equals(artifact.get("sha256").asText())) {
                Files.delete(target);
                System.err.println(path + ": checksum mismatch (expected " + artifact.get("sha256").asText()
                        + ", got " + actual + "); removed");
                return 1;
            }
            System.out.println(target + "  " + actual);
            files++;
        }
        if (files == 0) {
            System.err.println("run " + id + " has no exported files" + (only == null ? "" : " under " + only)
                    + " (status " + run.get("status").asText() + ")");
            return 1;
        }
        return 0;
    }

    static String sha256(Path file) throws IOException {
        try (InputStream in = new DigestInputStream(Files.newInputStream(file),
                MessageDigest.getInstance("SHA-256"))) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }
}
