package io.slope.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.localservices.ManagedProcess;
import io.slope.localservices.Ports;
import io.slope.localservices.S3Server;
import io.slope.testinfra.TestServices;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.yaml.snakeyaml.Yaml;

/**
 * compose.yaml without Docker: the api, pipeline-worker and gpu-worker services started on this host as processes,
 * with exactly the command, environment and published port compose.yaml gives them. Only what Docker would provide
 * differs: the addresses and keys of Postgres, Temporal and the S3 server (here the test servers on loopback), and
 * {@code /app/lib/*} (here the modules' build output). Then the CLI as a user runs it: token, submit with a local
 * corpus, follow to the end, status, runs, download with checksums, and cancel.
 */
class ComposeSmokeTest {
    private static final List<String> SERVICES = List.of("api", "pipeline-worker", "gpu-worker");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<ManagedProcess> processes = new ArrayList<>();
    private static String api;
    private static String token;
    private static Path work;

    @BeforeAll
    @SuppressWarnings("unchecked")
    static void startTheStack() throws Exception {
        Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir")));
        TestServices services = TestServices.get();
        work = services.scratch("compose-smoke");
        Path root = Path.of("..").toAbsolutePath().normalize();
        Map<String, Object> compose = new Yaml().load(Files.readString(root.resolve("compose.yaml")));
        Map<String, Object> definitions = (Map<String, Object>) compose.get("services");
        // The operator's .env, as .env.example has it; compose interpolates ${NAME...} from it.
        Map<String, String> dotenv = new LinkedHashMap<>();
        for (String line : Files.readAllLines(root.resolve(".env.example"))) {
            Matcher assignment = Pattern.compile("^([A-Z0-9_]+)=(.*)$").matcher(line);
            if (assignment.matches()) {
                dotenv.put(assignment.group(1), assignment.group(2));
            }
        }

        String jdbc = services.postgres().createDatabase("compose_smoke");
        String s3 = services.s3().endpoint();
        // What Docker's network and the compose file's other services provide, by the values compose.yaml uses.
        Map<String, String> provided = new LinkedHashMap<>();
        provided.put("jdbc:postgresql://postgres:5432/slope?user=slope&password=" + dotenv.get("POSTGRES_PASSWORD"),
                jdbc);
        provided.put("temporal:7233", services.temporal().target());
        provided.put("http://minio:9000", s3);
        provided.put("http://localhost:9000", s3);
        provided.put("http://localhost:8233", "http://127.0.0.1:" + services.temporal().uiPort());
        provided.put(dotenv.get("SLOPE_S3_SECRET_KEY"), S3Server.SECRET_KEY);
        provided.put("/var/lib/slope", work.toString());

        String hostClasspath = System.getProperty("java.class.path");
        String apiClasspath = root.resolve("api/target/slope-api-0.1.0-SNAPSHOT.jar") + ":" + root.resolve(
                "api/target/lib") + "/*";
        for (String name : SERVICES) {
            Map<String, Object> service = (Map<String, Object>) definitions.get(name);
            Map<String, String> env = new LinkedHashMap<>();
            ((Map<String, Object>) service.get("environment")).forEach((k, v) -> env.put(k, substitute(
                    interpolate(String.valueOf(v), dotenv), provided)));
            if (env.get("SLOPE_S3_ACCESS_KEY").equals(dotenv.get("SLOPE_S3_ACCESS_KEY"))) {
                env.put("SLOPE_S3_ACCESS_KEY", S3Server.ACCESS_KEY);
            }
            List<String> command = new ArrayList<>();
            for (String arg : (List<String>) service.get("command")) {
                command.add(arg.equals("/app/lib/*") ? (name.equals("api") ? apiClasspath : hostClasspath)
                        : arg.equals("java") ? Path.of(System.getProperty("java.home"), "bin", "java").toString()
                        : arg);
            }
            if (name.equals("api")) {
                String published = ((List<String>) service.get("ports")).getFirst();
                int port = Integer.parseInt(published.substring(0, published.indexOf(':')));
                assertEquals(env.get("SLOPE_API_PORT"), published.substring(published.indexOf(':') + 1));
                if (Ports.open(port)) {
                    // Another program holds compose's port on this machine; the smoke run still needs an API.
                    port = Ports.free();
                    System.err.println("compose's api port is taken here; using " + port);
                }
                env.put("SLOPE_API_PORT", Integer.toString(port));
                api = "http://127.0.0.1:" + port;
            }
            processes.add(ManagedProcess.start(name, command, env, work.resolve(name + ".log")));
        }
        awaitHealthy(Duration.ofMinutes(2));
        token = cli("token", "create", "--db", jdbc, "--user", "smoke").out().strip();
        assertTrue(token.startsWith("slope_"), token);
    }

    @AfterAll
    static void stop() {
        processes.forEach(ManagedProcess::stop);
    }

    @Test
    @Timeout(value = 8, unit = TimeUnit.MINUTES)
    void aUserSubmitsFollowsAndDownloadsWithTheCli() throws Exception {
        Path corpus = work.resolve("corpus.txt");
        Files.writeString(corpus, corpusText());
        Path spec = work.resolve("tiny.json");
        Files.writeString(spec, """
                {"name": "smoke", "model": {"preset": "tiny", "layers": 1, "dModel": 32, "heads": 2, "seqLen": 16},
                 "adapters": {"start": 0.75}, "training": {"steps": 20, "batchSize": 4, "seed": 5},
                 "optimizer": {"lr": 0.003, "warmupSteps": 2},
                 "data": {"corpus": ["corpus.txt"], "tokenizer": "char", "valFraction": 0.1},
                 "eval": {"every": 10, "maxWindows": 4}, "checkpointEvery": 10, "backend": "cpu", "threads": 1}
                """);
        Result submitted = cli("submit", spec.toString(), "--api", api, "--token", token);
        assertEquals(0, submitted.code(), submitted.toString());
        String id = submitted.out().strip();

        Result followed = cli("follow", id, "--api", api, "--token", token);
        assertEquals(0, followed.code(), followed.toString());
        String[] lines = followed.out().strip().split("\n");
        JsonNode summary = JSON.readTree(lines[lines.length - 1]);
        assertEquals("SUCCEEDED", summary.get("status").asText());
        assertEquals(20, summary.get("stepsDone").asInt());
        assertTrue(followed.out().contains("[##############################] 20/20"), followed.out());
        assertTrue(followed.out().contains("stage finalize: SUCCEEDED"), followed.out());

        Result status = cli("status", id, "--api", api, "--token", token);
        assertTrue(status.out().contains("SUCCEEDED") && status.out().contains("step 20/20"), status.out());
        assertTrue(cli("runs", "--api", api, "--token", token).out().contains(id));

        // The hf/ export, each file checked against the SHA-256 the run recorded (by the CLI, and again here).
        Path downloads = work.resolve("downloads");
        Result downloaded = cli("download", id, "--only", "hf/", "--out", downloads.toString(), "--api", api,
                "--token", token);
        assertEquals(0, downloaded.code(), downloaded.toString());
        int hfFiles = 0;
        for (JsonNode artifact : get("/api/v1/runs/" + id + "/artifacts").get("items")) {
            if (!artifact.get("path").asText().startsWith("hf/")) {
                continue;
            }
            Path file = downloads.resolve(artifact.get("path").asText());
            assertEquals(artifact.get("sha256").asText(), HexFormat.of().formatHex(MessageDigest
                    .getInstance("SHA-256").digest(Files.readAllBytes(file))), file::toString);
            hfFiles++;
        }
        assertTrue(Files.isRegularFile(downloads.resolve("hf/model.safetensors")));
        assertTrue(Files.isRegularFile(downloads.resolve("hf/config.json")));
        try (Stream<Path> files = Files.walk(downloads)) {
            assertEquals(hfFiles, files.filter(Files::isRegularFile).count(), "only hf/ was downloaded");
        }

        // Cancel a longer run from the CLI; following it then ends CANCELLED with exit code 1.
        Files.writeString(spec, Files.readString(spec).replace("\"steps\": 20", "\"steps\": 100000")
                .replace("\"checkpointEvery\": 10", "\"checkpointEvery\": 1000"));
        String longRun = cli("submit", spec.toString(), "--api", api, "--token", token).out().strip();
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (get("/api/v1/runs/" + longRun).get("stepsDone").asInt() < 5 && System.nanoTime() < deadline) {
            Thread.sleep(200);
        }
        assertEquals(0, cli("cancel", longRun, "--api", api, "--token", token).code());
        Result cancelled = cli("follow", longRun, "--api", api, "--token", token);
        assertEquals(1, cancelled.code(), cancelled.toString());
        assertTrue(cancelled.out().contains("\"status\":\"CANCELLED\""), cancelled.out());

        Result refused = cli("status", "not-a-run", "--api", api, "--token", token);
        assertEquals(2, refused.code());
        assertTrue(refused.err().contains("400"), refused.err());
    }

    @Test
    void composeFileMatchesTheComposeSpecSchema() throws Exception {
        Process check = new ProcessBuilder("python3", "deploy/validate_compose.py").directory(Path.of("..").toFile())
                .redirectErrorStream(true).start();
        String output = new String(check.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, check.waitFor(), output);
        assertTrue(output.contains(", 0 problems"), output);
    }

    record Result(int code, String out, String err) {}

    /** Runs the slope CLI in this JVM, capturing what it prints. */
    static synchronized Result cli(String... args) {
        PrintStream stdout = System.out;
        PrintStream stderr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            var commandLine = SlopeCli.commandLine();
            commandLine.setErr(new java.io.PrintWriter(System.err, true));
            int code = commandLine.execute(args);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(stdout);
            System.setErr(stderr);
        }
    }

    private static JsonNode get(String path) throws IOException, InterruptedException {
        HttpResponse<String> response = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(api + path))
                .header("Authorization", "Bearer " + token).build(), HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(response.body());
    }

    private static void awaitHealthy(Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        HttpClient http = HttpClient.newHttpClient();
        while (System.nanoTime() < deadline) {
            for (ManagedProcess p : processes) {
                if (!p.alive()) {
                    throw new AssertionError("a compose service exited: " + p.logTail());
                }
            }
            try {
                if (http.send(HttpRequest.newBuilder(URI.create(api + "/health")).build(),
                        HttpResponse.BodyHandlers.ofString()).statusCode() == 200) {
                    return;
                }
            } catch (IOException notYet) {
                // starting
            }
            Thread.sleep(250);
        }
        throw new AssertionError("the api did not become healthy: " + processes.getFirst().logTail());
    }

    /** Compose's interpolation: ${NAME}, ${NAME:?error} (required) and ${NAME:-default}, from the .env. */
    private static String interpolate(String value, Map<String, String> dotenv) {
        Matcher variable = Pattern.compile("\\$\\{([A-Z0-9_]+)(?::([?-])([^}]*))?}").matcher(value);
        StringBuilder result = new StringBuilder();
        while (variable.find()) {
            String set = dotenv.get(variable.group(1));
            if (set == null && !"-".equals(variable.group(2))) {
                throw new AssertionError(".env.example lacks " + variable.group(1) + ", which compose.yaml requires");
            }
            variable.appendReplacement(result, Matcher.quoteReplacement(set != null ? set : variable.group(3)));
        }
        return variable.appendTail(result).toString();
    }

    private static String substitute(String value, Map<String, String> provided) {
        String result = value;
        for (Map.Entry<String, String> e : provided.entrySet()) {
            result = result.replace(e.getKey(), e.getValue());
        }
        return result;
    }

    private static String corpusText() throws IOException {
        Path shared = Path.of("..", "..", "shared", "data", "tinyshakespeare.txt");
        return Files.exists(shared) ? Files.readString(shared).substring(0, 40_000)
                : "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n".repeat(500);
    }
}
