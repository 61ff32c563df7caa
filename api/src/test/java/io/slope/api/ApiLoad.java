package io.slope.api;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A load tool, not a test (bench/api-load): {@code clients} concurrent clients submit runs, then read run details,
 * against the API on real Postgres, the Temporal dev server and S3Proxy on this machine, with no workers (runs stay
 * queued, so the numbers are the API's: spec validation, catalogue insert and workflow start; catalogue reads).
 * Prints and writes p50/p90/p99 per request kind to bench/results/.
 */
public final class ApiLoad {
    private ApiLoad() {}

    public static void main(String[] args) throws Exception {
        int clients = Integer.parseInt(args[0]);
        int submits = Integer.parseInt(args[1]);
        int details = Integer.parseInt(args[2]);
        Path results = Path.of(args[3]);
        ApiHarness api = new ApiHarness(false);
        String corpus = api.corpus();
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .executor(Executors.newVirtualThreadPerTaskExecutor()).build();
        String spec = ApiHarness.tinySpec("load", corpus, 100);
        // Warm-up: JIT, connection pools, Temporal's first calls.
        run(http, clients, 200, i -> post(api, spec), new ConcurrentLinkedQueue<>());
        ConcurrentLinkedQueue<String> ids = new ConcurrentLinkedQueue<>();
        Result submit = run(http, clients, submits, i -> post(api, spec), ids);
        List<String> known = new ArrayList<>(ids);
        Result detail = run(http, clients, details, i -> HttpRequest.newBuilder(URI.create(api.base + "/api/v1/runs/"
                + known.get(i % known.size()))).header("Authorization", "Bearer " + api.aliceToken).GET().build(),
                null);
        // The API's own timer of Temporal's workflow starts, for how much of a submit is Temporal's.
        String prometheus = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(api.base
                + "/prometheus")).header("Authorization", "Bearer " + api.aliceToken).build(),
                HttpResponse.BodyHandlers.ofString()).body();
        String startLine = "Temporal's share of a submit, from the API's `slope_workflow_start_seconds` timer (warm-up "
                + "included): mean " + String.format("%.1f", 1000 * metric(prometheus, "slope_workflow_start_seconds_sum")
                / metric(prometheus, "slope_workflow_start_seconds_count")) + " ms over "
                + (long) metric(prometheus, "slope_workflow_start_seconds_count") + " starts.\n";
        String when = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd-HHmm"));
        String report = "# API latency under " + clients + " concurrent clients (" + when + ")\n\n"
                + "bench/api-load " + clients + " " + submits + " " + details + " on this machine ("
                + Runtime.getRuntime().availableProcessors() + " cores), API + Postgres + Temporal dev server + "
                + "S3Proxy on loopback, no workers (submitted runs stay queued), after 200 warm-up submits.\n\n"
                + "| request | n | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|\n"
                + submit.row("POST /api/v1/runs (validate, insert, start workflow)")
                + detail.row("GET /api/v1/runs/{id} (detail from Postgres)") + "\n" + startLine;
        System.out.println(report);
        Files.createDirectories(results);
        Files.writeString(results.resolve("api-load-" + when + ".md"), report);
        System.exit(0);
    }

    private static double metric(String prometheus, String name) {
        for (String line : prometheus.split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        throw new IllegalStateException(name + " is not among the API's metrics");
    }

    interface RequestMaker {
        HttpRequest make(int i);
    }

    record Result(int n, int errors, double seconds, long[] nanos) {
        String row(String what) {
            long[] sorted = nanos.clone();
            Arrays.sort(sorted);
            return String.format("| %s | %d | %d | %.0f | %.1f | %.1f | %.1f | %.1f |%n", what, n, errors,
                    n / seconds, pct(sorted, 50), pct(sorted, 90), pct(sorted, 99), sorted[sorted.length - 1] / 1e6);
        }

        private static double pct(long[] sorted, int p) {
            return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)] / 1e6;
        }
    }

    private static HttpRequest post(ApiHarness api, String spec) {
        return HttpRequest.newBuilder(URI.create(api.base + "/api/v1/runs")).header("Authorization", "Bearer "
                + api.aliceToken).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(spec)).build();
    }

    private static final Pattern ID = Pattern.compile("\"id\":\"([0-9a-f-]{36})\"");

    /** {@code total} requests from {@code clients} concurrent clients (each one request at a time). */
    private static Result run(HttpClient http, int clients, int total, RequestMaker maker,
            ConcurrentLinkedQueue<String> ids) throws Exception {
        AtomicInteger next = new AtomicInteger();
        AtomicInteger errors = new AtomicInteger();
        List<Long> nanos = Collections.synchronizedList(new ArrayList<>());
        long start = System.nanoTime();
        try (var executor = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int c = 0; c < clients; c++) {
                executor.submit(() -> {
                    for (int i = next.getAndIncrement(); i < total; i = next.getAndIncrement()) {
                        long t0 = System.nanoTime();
                        try {
                            HttpResponse<String> response = http.send(maker.make(i),
                                    HttpResponse.BodyHandlers.ofString());
                            nanos.add(System.nanoTime() - t0);
                            if (response.statusCode() >= 300) {
                                errors.incrementAndGet();
                            } else if (ids != null) {
                                Matcher m = ID.matcher(response.body());
                                if (m.find()) {
                                    ids.add(m.group(1));
                                }
                            }
                        } catch (Exception e) {
                            errors.incrementAndGet();
                        }
                    }
                    return null;
                });
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return new Result(total, errors.get(), seconds, nanos.stream().mapToLong(Long::longValue).toArray());
    }
}
