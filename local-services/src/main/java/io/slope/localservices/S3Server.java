package io.slope.localservices;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * A real S3 server: S3Proxy (Maven Central) with its filesystem backend, in its own JVM so that it can be killed and
 * restarted like any server and its dependencies stay off the tests' class path. AWS v4 signatures are checked.
 */
public final class S3Server {
    public static final String ACCESS_KEY = "slope-test";
    public static final String SECRET_KEY = "slope-test-secret-key";

    private final Path root;
    private final Path log;
    private final int port;
    private ManagedProcess process;

    private S3Server(Path root, int port) {
        this.root = root;
        this.log = root.resolve("s3proxy.log");
        this.port = port;
    }

    public static S3Server start(Path root, int port) {
        S3Server server = new S3Server(root, port);
        try {
            Files.createDirectories(root.resolve("blobs"));
            Files.writeString(root.resolve("s3proxy.properties"), String.join("\n",
                    "s3proxy.endpoint=http://127.0.0.1:" + port,
                    "s3proxy.authorization=aws-v2-or-v4",
                    "s3proxy.identity=" + ACCESS_KEY,
                    "s3proxy.credential=" + SECRET_KEY,
                    "jclouds.provider=filesystem",
                    "jclouds.filesystem.basedir=" + root.resolve("blobs"),
                    ""));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        server.start();
        return server;
    }

    public void start() {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        process = ManagedProcess.start("s3proxy", List.of(java, "-Xmx512m", "-cp", classpath(),
                "org.gaul.s3proxy.Main", "--properties", root.resolve("s3proxy.properties").toString()), Map.of(), log);
        Ports.await("S3Proxy on 127.0.0.1:" + port, Duration.ofSeconds(60), () -> Ports.open(port), process);
    }

    public void stop() {
        process.stop();
    }

    public void kill() {
        process.kill();
    }

    public String endpoint() {
        return "http://127.0.0.1:" + port;
    }

    /**
     * S3Proxy's class path: $SLOPE_S3PROXY_CLASSPATH (its jars carried to a machine without this build's Maven
     * repository: device-bundle/stage-service.sh), else the one Maven wrote into this jar at build time.
     */
    private static String classpath() {
        String configured = System.getenv("SLOPE_S3PROXY_CLASSPATH");
        if (configured != null && !configured.isBlank()) {
            return configured;
        }
        try (InputStream in = S3Server.class.getResourceAsStream("s3proxy.classpath")) {
            if (in == null) {
                throw new IllegalStateException("s3proxy.classpath is missing from slope-test-infra: build it with "
                        + "Maven (mvn -pl test-infra package)");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
