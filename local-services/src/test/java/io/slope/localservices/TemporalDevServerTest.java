package io.slope.localservices;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The real dev server, killed while another socket takes its UI port: it comes back on its gRPC port all the same. */
class TemporalDevServerTest {
    @TempDir
    Path tmp;

    @Test
    void aKilledServerRestartsOnAFreshUiPortWhenItsOldOneWasTaken() throws Exception {
        int port = Ports.free();
        TemporalDevServer server = TemporalDevServer.start(tmp, port, Ports.free());
        try {
            int oldUi = server.uiPort();
            server.kill();
            try (ServerSocket squatter = new ServerSocket(oldUi, 1, InetAddress.getLoopbackAddress())) {
                server.killAndRestart();
                assertNotEquals(oldUi, server.uiPort(), "the UI moved off the taken port");
                assertTrue(Ports.open(port), "the gRPC port is the one clients hold");
            }
        } finally {
            server.stop();
        }
    }
}
