package io.slope.localservices;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where slope up keeps its cluster when it runs as root: Postgres runs as nobody, who must reach the folder. */
class PostgresServerTest {
    @TempDir
    Path tmp;

    @Test
    void aFolderEveryoneCanReachStaysWhereItIs() throws Exception {
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path preferred = tmp.resolve("home/.slope/postgres");
        assertEquals(preferred, PostgresServer.clusterFolder(preferred));
    }

    @Test
    void asRootAFolderBehindAPrivateHomeMovesWhereNobodyReachesIt() throws Exception {
        assumeTrue("root".equals(System.getProperty("user.name")), "only root runs Postgres as nobody");
        Path home = Files.createDirectory(tmp.resolve("root-home"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path moved = PostgresServer.clusterFolder(home.resolve(".slope/postgres"));
        assertTrue(moved.startsWith("/var/lib/slope/"), moved.toString());
        assertEquals(moved, PostgresServer.clusterFolder(home.resolve(".slope/postgres")), "one folder per home");
    }
}
