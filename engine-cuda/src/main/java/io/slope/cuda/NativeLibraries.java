package io.slope.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Finds the CUDA libraries the backend binds through java.lang.foreign, at run time: {@code SLOPE_CUDA_LIBS} (folders
 * or files, ':'-separated), then {@code LD_LIBRARY_PATH}, {@code /usr/local/cuda/lib64}, and the {@code lib} folders of
 * NVIDIA's pip packages in the usual Python environments. A miss names every place searched.
 */
final class NativeLibraries {
    private NativeLibraries() {}

    /** Folders searched, in order. */
    static List<Path> searchPath() {
        Set<Path> dirs = new LinkedHashSet<>();
        addAll(dirs, System.getenv("SLOPE_CUDA_LIBS"));
        addAll(dirs, System.getenv("LD_LIBRARY_PATH"));
        dirs.add(Path.of("/usr/local/cuda/lib64"));
        for (String site : List.of("/opt/torch/.venv/lib", "/usr/local/lib", "/usr/lib", System.getProperty(
                "user.home") + "/.local/lib")) {
            for (Path python : children(Path.of(site), "python3*")) {
                for (String packages : List.of("site-packages", "dist-packages")) {
                    for (Path pkg : children(python.resolve(packages).resolve("nvidia"), "*")) {
                        dirs.add(pkg.resolve("lib"));
                        for (Path sub : children(pkg, "cu*")) {
                            dirs.add(sub.resolve("lib"));
                        }
                    }
                }
            }
        }
        return List.copyOf(dirs);
    }

    /** The first existing file among {@code fileNames} in the search path. */
    static Optional<Path> find(List<String> fileNames) {
        for (Path dir : searchPath()) {
            for (String name : fileNames) {
                if (Files.isRegularFile(dir)) {
                    if (dir.getFileName().toString().equals(name)) {
                        return Optional.of(dir);
                    }
                    continue;
                }
                Path p = dir.resolve(name);
                if (Files.isRegularFile(p)) {
                    return Optional.of(p);
                }
            }
        }
        return Optional.empty();
    }

    /** Loads the library or throws naming what was searched. */
    static SymbolLookup load(String what, List<String> fileNames, Arena arena) {
        Path p = find(fileNames).orElseThrow(() -> new IllegalStateException(missing(what, fileNames)));
        return SymbolLookup.libraryLookup(p, arena);
    }

    static String missing(String what, List<String> fileNames) {
        return what + " not found: looked for " + fileNames + " in " + searchPath()
                + " (set SLOPE_CUDA_LIBS to the folder that holds it)";
    }

    private static void addAll(Set<Path> dirs, String pathList) {
        if (pathList == null || pathList.isBlank()) {
            return;
        }
        for (String s : pathList.split(":")) {
            if (!s.isBlank()) {
                dirs.add(Path.of(s));
            }
        }
    }

    private static List<Path> children(Path dir, String glob) {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, glob)) {
            for (Path p : ds) {
                if (Files.isDirectory(p)) {
                    out.add(p);
                }
            }
        } catch (IOException e) {
            return out;
        }
        out.sort(null);
        return out;
    }
}
