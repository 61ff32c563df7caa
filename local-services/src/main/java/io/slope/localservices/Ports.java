package io.slope.localservices;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.function.IntConsumer;

/** Loopback ports for test servers. */
public final class Ports {
    private Ports() {}

    /** A server's process exited before it was ready; the message has its exit code and the end of its log. */
    public static final class ExitedBeforeReady extends IllegalStateException {
        ExitedBeforeReady(String message) {
            super(message);
        }
    }

    /**
     * Runs {@code attempt} 1, 2, … up to {@code tries}, again each time its server's process exits before it is ready,
     * saying so on stderr; the last failure is thrown. For test servers on ports chosen by {@link #free}: such a port
     * can be taken by another socket before the server binds it (seen in CI), so each attempt after the first chooses
     * what it may afresh.
     */
    public static void retryWhileExitedBeforeReady(int tries, IntConsumer attempt) {
        for (int i = 1; ; i++) {
            try {
                attempt.accept(i);
                return;
            } catch (ExitedBeforeReady e) {
                if (i == tries) {
                    throw e;
                }
                System.err.println(e.getMessage().lines().findFirst().orElse("") + "; trying again on fresh ports");
            }
        }
    }

    /** A port that was free on 127.0.0.1 a moment ago. */
    public static int free() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("no free loopback port", e);
        }
    }

    /** Whether something accepts connections on 127.0.0.1:port. */
    public static boolean open(int port) {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** Waits until a condition holds, failing with {@code what} and the server's log tail after {@code timeout}. */
    public static void await(String what, Duration timeout, java.util.function.BooleanSupplier condition,
            ManagedProcess process) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (process != null && !process.alive()) {
                throw new ExitedBeforeReady(what + ": the process exited with " + process.exitCode() + "\n"
                        + process.logTail());
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(what + ": not ready after " + timeout
                        + (process == null ? "" : "\n" + process.logTail()));
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(what + ": interrupted", e);
            }
        }
    }
}
