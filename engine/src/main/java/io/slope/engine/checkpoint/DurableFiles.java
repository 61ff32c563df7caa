package io.slope.engine.checkpoint;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * File operations whose effects survive a crash of the process or of the machine once they return. Used by the
 * checkpoint store and by dataset preparation, which both publish a directory only after all of its content is on disk.
 */
public final class DurableFiles {
    private DurableFiles() {}

    /**
     * Flushes a file's content and metadata, or a directory's entries, to the device. On Linux a newly created or
     * renamed entry is durable only once its directory has been synced, so every create/rename that matters is
     * followed by this on the parent.
     */
    public static void fsync(Path fileOrDirectory) throws IOException {
        try (FileChannel channel = FileChannel.open(fileOrDirectory, StandardOpenOption.READ)) {
            channel.force(true);
        }
    }

    /**
     * Publishes a fully written staging directory under its final name: syncs its entries, renames it atomically
     * (same file system) and syncs the parent, so the name appears only with all of its content behind it.
     */
    public static void publishDirectory(Path staging, Path target) throws IOException {
        fsync(staging);
        moveAtomically(staging, target);
        fsync(target.toAbsolutePath().getParent());
    }

    /** Writes the content of a directory being created. */
    public interface DirectoryContent {
        void writeInto(Path staging) throws IOException;
    }

    /**
     * Creates the directory {@code target} with {@code content} written into a staging folder beside it, then
     * {@linkplain #publishDirectory published}; on failure the staging folder is removed and {@code target} never
     * appears. The caller checks first that {@code target} does not exist.
     */
    public static void createDirectoryAtomically(Path target, DirectoryContent content) throws IOException {
        Path parent = target.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path staging = Files.createTempDirectory(parent, "." + target.getFileName() + ".staging-");
        try {
            content.writeInto(staging);
            publishDirectory(staging, target);
        } catch (IOException | RuntimeException e) {
            deleteRecursively(staging);
            throw e;
        }
    }

    /** Writes {@code content} to {@code target} so that a reader sees either the old file or the whole new one. */
    public static void writeAtomically(Path target, byte[] content) throws IOException {
        Path temp = target.resolveSibling("." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
        try {
            Files.write(temp, content, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            fsync(temp);
            moveAtomically(temp, target);
        } finally {
            Files.deleteIfExists(temp);
        }
        fsync(target.toAbsolutePath().getParent());
    }

    /** Renames within one file system; refuses to fall back to copy-and-delete, which is not atomic. */
    public static void moveAtomically(Path source, Path target) throws IOException {
        try {
            Files.move(source, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("cannot rename " + source + " to " + target
                    + " atomically; both must be on one file system", e);
        }
    }

    /** Deletes a directory tree, children first; a missing tree is not an error (deletion is idempotent). */
    public static void deleteRecursively(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                try {
                    Files.delete(path);
                } catch (NoSuchFileException alreadyGone) {
                    // another deleter got there first: the outcome is the same
                }
            }
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    public static MessageDigest newSha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime provides SHA-256", e);
        }
    }

    public static String sha256Hex(byte[] content) {
        return HexFormat.of().formatHex(newSha256().digest(content));
    }
}
