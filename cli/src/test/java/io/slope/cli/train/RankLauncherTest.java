package io.slope.cli.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** How the launcher builds its ranks' command lines and environment. */
class RankLauncherTest {
    @Test
    void jvmFlagsPassThroughExceptTheHeapTheClassPathAndADebugger() {
        assertEquals(List.of("--enable-native-access=ALL-UNNAMED", "-Dx=y", "--add-opens", "java.base/java.lang=ALL",
                "-XX:+UseG1GC"), RankLauncher.jvmFlags(List.of("-Xmx12000m", "--enable-native-access=ALL-UNNAMED",
                "-Dx=y", "-cp", "a.jar:lib/*", "--add-opens", "java.base/java.lang=ALL",
                "-agentlib:jdwp=transport=dt_socket", "-XX:+UseG1GC", "io.slope.cli.SlopeCli", "train", "-Dnot=mine")));
        assertEquals(List.of("-Dx=y"), RankLauncher.jvmFlags(List.of("-Dx=y", "-jar", "surefirebooter.jar", "-Dz")));
    }

    @Test
    void eachRankSeesOneDeviceOfTheUsersList() {
        assertEquals("1", RankLauncher.device(null, 1, 2));
        assertEquals("5", RankLauncher.device("4, 5,6", 1, 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> RankLauncher.device("3", 1, 2));
        assertTrue(e.getMessage().startsWith("--ranks: 2 ranks need 2 GPUs, but CUDA_VISIBLE_DEVICES=3 names 1"),
                e.getMessage());
    }

    @Test
    void theRanksCommandIsThisJavaWithItsHeapSplit() {
        List<String> command = RankLauncher.javaCommand(2);
        long half = RankLauncher.heapPerRank(2);
        assertEquals("-Xmx" + half + "m", command.get(1));
        assertTrue(command.contains("--enable-native-access=ALL-UNNAMED"), command.toString());
        assertEquals(System.getProperty("java.class.path"), command.getLast());
    }

    @Test
    void describesSignals() {
        assertEquals("was killed by SIGKILL (exit status 137)", RankLauncher.describe(137));
        assertEquals("exited with status 1", RankLauncher.describe(1));
    }
}
