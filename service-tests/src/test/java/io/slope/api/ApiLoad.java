package io.slope.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.slope.activities.worker.WorkerEnvironment;
import io.slope.storage.ObjectStore;
import io.slope.workflows.run.SlopeRunWorkflow;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.WorkflowExecutionStatus;
import io.temporal.api.workflowservice.v1.CountWorkflowExecutionsRequest;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.client.WorkflowClient;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A load tool, not a test (bench/api-load): the API on real Postgres, the Temporal dev server and S3Proxy with the
 * pipeline and GPU workers (CPU backend) in this JVM. For {@code minutes}, {@code clients} concurrent clients read run
 * details and list pages while runs train, and two soak loops go through submit, cancel, delete: one lets each run
 * train to a checkpoint first, the other cancels right after the submit. Then it checks that the soak left nothing
 * behind (catalogue rows of any table with a run_id, objects under runs/ID/, open workflows), and prints and writes
 * the figures (latency percentiles, status classes, soak cycles and leaks, this JVM's memory) as JSON to
 * bench/results/. Exits 1 on a 5xx or a leak.
 */
public final class ApiLoad {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The soak's training runs: long enough to train through several checkpoints before they are cancelled. */
    private static final int TRAINED_STEPS = 400;
    private static final int CANCEL_AFTER_STEP = 25;

    private ApiLoad() {}

    public static void main(String[] args) throws Exception {
        double minutes = Double.parseDouble(args[0]);
        int clients = Integer.parseInt(args[1]);
        int thinkMs = Integer.parseInt(args[2]);
        Path results = Path.of(args[3]);
        ApiHarness api = ServiceHarness.get();
        String corpus = api.corpus();
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .executor(Executors.newVirtualThreadPerTaskExecutor()).connectTimeout(Duration.ofSeconds(10)).build();
        Client client = new Client(api, http);

        // History to list and read: runs of alice's cancelled right after the submit (they never train).
        List<String> history = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            String id = client.submit(ApiHarness.tinySpec("history-" + i, corpus, 10));
            client.cancel(id);
            history.add(id);
        }
        for (String id : history) {
            client.awaitFinished(id);
        }
        Stats detail = new Stats();
        Stats list = new Stats();
        Soak soak = new Soak(client, corpus);
        Memory memory = new Memory();
        long deadline = System.nanoTime() + (long) (minutes * 60e9);
        Instant started = Instant.now();
        try (var executor = Executors.newVirtualThreadPerTaskExecutor()) {
            executor.submit(() -> soak.trained(deadline));
            executor.submit(() -> soak.quick(deadline));
            executor.submit(() -> memory.sample(deadline));
            for (int c = 0; c < clients; c++) {
                executor.submit(() -> read(client, history, soak, detail, list, deadline, thinkMs));
            }
        }
        double seconds = Duration.between(started, Instant.now()).toMillis() / 1000.0;
        ObjectNode leaks = leaks(api, soak.ids);
        System.gc();
        ObjectNode report = JSON.createObjectNode();
        String when = DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmm").withZone(ZoneOffset.UTC).format(started);
        report.put("bench", "api-load");
        report.put("startedUtc", started.toString());
        report.put("command", "bench/api-load " + args[0] + " " + clients + " " + thinkMs);
        report.put("cores", Runtime.getRuntime().availableProcessors());
        report.put("loadAverageAtEnd", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        report.put("seconds", seconds);
        report.put("clients", clients);
        report.put("thinkMs", thinkMs);
        report.set("detail", detail.json(seconds));
        report.set("list", list.json(seconds));
        ObjectNode soakJson = report.putObject("soak");
        soakJson.put("cycles", soak.ids.size());
        soakJson.put("trainedCycles", soak.trained.get());
        soakJson.put("quickCycles", soak.quick.get());
        soakJson.put("stepsTrained", soak.steps.get());
        soakJson.put("unexpectedAnswers", soak.unexpected.size());
        soakJson.set("firstUnexpected", JSON.valueToTree(soak.unexpected.stream().limit(10).toList()));
        soakJson.set("leaked", leaks);
        report.set("memory", memory.json());
        report.put("note", "one JVM holds the API, the pipeline and GPU workers (training on the CPU) and the "
                + "clients; memory is that JVM's (heap as the JVM counts it, RSS from /proc/self/status)");
        String text = JSON.writerWithDefaultPrettyPrinter().writeValueAsString(report);
        System.out.println(text);
        Files.createDirectories(results);
        Files.writeString(results.resolve("api-load-" + when + ".json"), text + "\n");
        long serverErrors = detail.s5xx.get() + list.s5xx.get() + soak.serverErrors.get();
        boolean leaked = leaks.get("total").asLong() > 0;
        System.out.println("5xx: " + serverErrors + ", leaked: " + leaks.get("total").asLong() + " -> "
                + results.resolve("api-load-" + when + ".json"));
        System.exit(serverErrors > 0 || leaked ? 1 : 0);
    }

    /** One reading client: a run's detail or a page of the list, at random, until the deadline. */
    private static Void read(Client client, List<String> history, Soak soak, Stats detail, Stats list, long deadline,
            int thinkMs) throws InterruptedException {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        while (System.nanoTime() < deadline) {
            if (random.nextInt(3) == 0) {
                String cursor = random.nextBoolean() ? null : list.lastCursor.get();
                client.timed(list, "/api/v1/runs?limit=20" + (cursor == null ? "" : "&cursor=" + cursor));
            } else {
                String training = soak.current.get();
                String id = training != null && random.nextInt(4) == 0 ? training
                        : history.get(random.nextInt(history.size()));
                client.timed(detail, "/api/v1/runs/" + id);
            }
            if (thinkMs > 0) {
                Thread.sleep(thinkMs);
            }
        }
        return null;
    }

    /** Latencies and status classes of one kind of request. */
    static final class Stats {
        final ConcurrentLinkedQueue<Long> nanos = new ConcurrentLinkedQueue<>();
        final AtomicLong s2xx = new AtomicLong();
        final AtomicLong s4xx = new AtomicLong();
        final AtomicLong s5xx = new AtomicLong();
        final AtomicLong ioErrors = new AtomicLong();
        final AtomicReference<String> lastCursor = new AtomicReference<>();
        final ConcurrentLinkedQueue<String> firstErrors = new ConcurrentLinkedQueue<>();

        ObjectNode json(double seconds) {
            long[] sorted = nanos.stream().mapToLong(Long::longValue).toArray();
            Arrays.sort(sorted);
            ObjectNode node = JSON.createObjectNode();
            node.put("n", sorted.length);
            node.put("perSecond", Math.round(sorted.length / seconds));
            node.put("p50Ms", pct(sorted, 50));
            node.put("p90Ms", pct(sorted, 90));
            node.put("p99Ms", pct(sorted, 99));
            node.put("maxMs", sorted.length == 0 ? 0 : sorted[sorted.length - 1] / 1e6);
            node.put("status2xx", s2xx.get());
            node.put("status4xx", s4xx.get());
            node.put("status5xx", s5xx.get());
            node.put("ioErrors", ioErrors.get());
            node.set("firstErrors", JSON.valueToTree(firstErrors.stream().limit(5).toList()));
            return node;
        }

        private static double pct(long[] sorted, int p) {
            if (sorted.length == 0) {
                return 0;
            }
            return Math.round(sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)]
                    / 1e4) / 100.0;
        }
    }

    /** The API as alice, over one shared HTTP client. */
    record Client(ApiHarness api, HttpClient http) {
        HttpResponse<String> send(HttpRequest.Builder request) throws Exception {
            return http.send(request.header("Authorization", "Bearer " + api.aliceToken)
                    .timeout(Duration.ofSeconds(60)).build(), HttpResponse.BodyHandlers.ofString());
        }

        HttpRequest.Builder at(String path) {
            return HttpRequest.newBuilder(URI.create(api.base + path));
        }

        void timed(Stats stats, String path) {
            long t0 = System.nanoTime();
            try {
                HttpResponse<String> response = send(at(path).GET());
                stats.nanos.add(System.nanoTime() - t0);
                int status = response.statusCode();
                if (status >= 500) {
                    stats.s5xx.incrementAndGet();
                    stats.firstErrors.add(status + " " + path + " " + response.body());
                } else if (status >= 400) {
                    stats.s4xx.incrementAndGet();
                    stats.firstErrors.add(status + " " + path + " " + response.body());
                } else {
                    stats.s2xx.incrementAndGet();
                    if (path.startsWith("/api/v1/runs?")) {
                        JsonNode next = JSON.readTree(response.body()).get("nextCursor");
                        stats.lastCursor.set(next == null ? null : next.asText());
                    }
                }
            } catch (Exception e) {
                stats.ioErrors.incrementAndGet();
                stats.firstErrors.add(path + " " + e);
            }
        }

        String submit(String spec) throws Exception {
            HttpResponse<String> response = send(at("/api/v1/runs").header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(spec)));
            if (response.statusCode() != 201) {
                throw new IllegalStateException("submit: " + response.statusCode() + " " + response.body());
            }
            return JSON.readTree(response.body()).get("id").asText();
        }

        HttpResponse<String> cancel(String id) throws Exception {
            return send(at("/api/v1/runs/" + id + "/cancel").POST(HttpRequest.BodyPublishers.noBody()));
        }

        HttpResponse<String> delete(String id) throws Exception {
            return send(at("/api/v1/runs/" + id).DELETE());
        }

        JsonNode detail(String id) throws Exception {
            return JSON.readTree(send(at("/api/v1/runs/" + id).GET()).body());
        }

        JsonNode awaitFinished(String id) throws Exception {
            long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
            while (System.nanoTime() < deadline) {
                JsonNode run = detail(id);
                if (List.of("SUCCEEDED", "FAILED", "CANCELLED").contains(run.path("status").asText())) {
                    return run;
                }
                Thread.sleep(200);
            }
            throw new IllegalStateException("run " + id + " did not finish in 5 minutes");
        }
    }

    /** The submit, cancel, delete cycles; every run they made, to check for leftovers. */
    static final class Soak {
        final Client client;
        final String corpus;
        final List<String> ids = new CopyOnWriteArrayList<>();
        final AtomicReference<String> current = new AtomicReference<>();
        final AtomicLong trained = new AtomicLong();
        final AtomicLong quick = new AtomicLong();
        final AtomicLong steps = new AtomicLong();
        final AtomicLong serverErrors = new AtomicLong();
        final List<String> unexpected = new CopyOnWriteArrayList<>();

        Soak(Client client, String corpus) {
            this.client = client;
            this.corpus = corpus;
        }

        /** Runs that train past a few checkpoints, then are cancelled and deleted: the runs training meanwhile. */
        Void trained(long deadline) {
            while (System.nanoTime() < deadline) {
                try {
                    String id = client.submit(ApiHarness.tinySpec("soak-trained", corpus, TRAINED_STEPS));
                    ids.add(id);
                    current.set(id);
                    JsonNode run = client.detail(id);
                    while (run.path("stepsDone").asInt() < CANCEL_AFTER_STEP
                            && !List.of("SUCCEEDED", "FAILED", "CANCELLED").contains(run.path("status").asText())) {
                        Thread.sleep(250);
                        run = client.detail(id);
                    }
                    steps.addAndGet(run.path("stepsDone").asInt());
                    finish(id);
                    trained.incrementAndGet();
                } catch (Exception e) {
                    unexpected.add("trained cycle: " + e);
                }
            }
            return null;
        }

        /** Runs cancelled right after their submit, and deleted. */
        Void quick(long deadline) {
            while (System.nanoTime() < deadline) {
                try {
                    String id = client.submit(ApiHarness.tinySpec("soak-quick", corpus, 10));
                    ids.add(id);
                    finish(id);
                    quick.incrementAndGet();
                    Thread.sleep(500);
                } catch (Exception e) {
                    unexpected.add("quick cycle: " + e);
                }
            }
            return null;
        }

        private void finish(String id) throws Exception {
            expect(client.cancel(id), "cancel " + id, 202, 409);
            client.awaitFinished(id);
            expect(client.delete(id), "delete " + id, 204);
            expect(client.send(client.at("/api/v1/runs/" + id).GET()), "detail after delete " + id, 404);
        }

        private void expect(HttpResponse<String> response, String what, int... statuses) {
            if (response.statusCode() >= 500) {
                serverErrors.incrementAndGet();
            }
            if (Arrays.stream(statuses).noneMatch(s -> s == response.statusCode())) {
                unexpected.add(what + ": " + response.statusCode() + " " + response.body());
            }
        }
    }

    /** Heap used and resident set of this JVM, sampled every 2 s. */
    static final class Memory {
        long maxHeapUsed;
        long maxRss;
        final List<Long> heapSamples = new ArrayList<>();

        Void sample(long deadline) throws Exception {
            while (System.nanoTime() < deadline) {
                long heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
                synchronized (this) {
                    maxHeapUsed = Math.max(maxHeapUsed, heap);
                    maxRss = Math.max(maxRss, rss());
                    heapSamples.add(heap);
                }
                Thread.sleep(2000);
            }
            return null;
        }

        static long rss() throws Exception {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
            return -1;
        }

        synchronized ObjectNode json() throws Exception {
            System.gc();
            ObjectNode node = JSON.createObjectNode();
            node.put("maxHeapMiB", Runtime.getRuntime().maxMemory() >> 20);
            node.put("peakHeapUsedMiB", maxHeapUsed >> 20);
            node.put("heapUsedAfterGcAtEndMiB",
                    ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() >> 20);
            node.put("peakRssMiB", maxRss >> 20);
            node.put("rssAtEndMiB", rss() >> 20);
            if (!heapSamples.isEmpty()) {
                // The heap's floor over the first and the last tenth of the run: what a leak would raise.
                int tenth = Math.max(1, heapSamples.size() / 10);
                node.put("heapFloorFirstTenthMiB", heapSamples.subList(0, tenth).stream().mapToLong(Long::longValue)
                        .min().orElse(0) >> 20);
                node.put("heapFloorLastTenthMiB", heapSamples.subList(heapSamples.size() - tenth, heapSamples.size())
                        .stream().mapToLong(Long::longValue).min().orElse(0) >> 20);
            }
            return node;
        }
    }

    /**
     * What the soak's deleted runs left: rows in every catalogue table with a run_id (and in runs), objects under
     * runs/ID/, and workflows still open in Temporal (theirs and any other, once every run has finished).
     */
    private static ObjectNode leaks(ApiHarness api, List<String> ids) throws Exception {
        WorkerEnvironment environment = WorkerEnvironment.fromEnvironment(api.env);
        WorkflowClient temporal = environment.client();
        ObjectNode node = JSON.createObjectNode();
        long total = 0;
        // Workflows end after their run is marked finished: give the last ones a moment.
        long openOfSoak = 0;
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        do {
            openOfSoak = 0;
            for (String id : ids) {
                if (open(temporal, SlopeRunWorkflow.workflowId(id))) {
                    openOfSoak++;
                }
            }
            if (openOfSoak > 0) {
                Thread.sleep(1000);
            }
        } while (openOfSoak > 0 && System.nanoTime() < deadline);
        node.put("openSoakWorkflows", openOfSoak);
        total += openOfSoak;
        long openAll = temporal.getWorkflowServiceStubs().blockingStub().countWorkflowExecutions(
                CountWorkflowExecutionsRequest.newBuilder().setNamespace(temporal.getOptions().getNamespace())
                        .setQuery("ExecutionStatus = 'Running'").build()).getCount();
        node.put("openWorkflowsInNamespace", openAll);
        total += openAll;
        ObjectNode rows = node.putObject("rows");
        try (Connection db = DriverManager.getConnection(api.env.get("SLOPE_DB_URL"))) {
            java.sql.Array array = db.createArrayOf("uuid", ids.stream().map(java.util.UUID::fromString).toArray());
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = db.createStatement().executeQuery("SELECT table_name FROM information_schema.columns "
                    + "WHERE table_schema = 'public' AND column_name = 'run_id' ORDER BY table_name")) {
                while (rs.next()) {
                    tables.add(rs.getString(1));
                }
            }
            long count = count(db, "SELECT count(*) FROM runs WHERE id = ANY (?)", array);
            rows.put("runs", count);
            total += count;
            for (String table : tables) {
                count = count(db, "SELECT count(*) FROM " + table + " WHERE run_id = ANY (?)", array);
                rows.put(table, count);
                total += count;
            }
        }
        ObjectStore objects = environment.objectStore();
        long leftObjects = 0;
        for (String id : ids) {
            leftObjects += objects.list("runs/" + id + "/").size();
        }
        node.put("objects", leftObjects);
        total += leftObjects;
        node.put("total", total);
        return node;
    }

    private static long count(Connection db, String sql, java.sql.Array ids) throws Exception {
        try (PreparedStatement statement = db.prepareStatement(sql)) {
            statement.setArray(1, ids);
            try (ResultSet rs = statement.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private static boolean open(WorkflowClient temporal, String workflowId) {
        try {
            return temporal.getWorkflowServiceStubs().blockingStub().describeWorkflowExecution(
                    DescribeWorkflowExecutionRequest.newBuilder().setNamespace(temporal.getOptions().getNamespace())
                            .setExecution(WorkflowExecution.newBuilder().setWorkflowId(workflowId)).build())
                    .getWorkflowExecutionInfo().getStatus() == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING;
        } catch (io.grpc.StatusRuntimeException e) {
            if (e.getStatus().getCode() == io.grpc.Status.Code.NOT_FOUND) {
                return false;
            }
            throw e;
        }
    }
}
