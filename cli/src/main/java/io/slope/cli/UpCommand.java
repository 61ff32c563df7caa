package io.slope.cli;

import io.slope.cli.up.ApiProcess;
import io.slope.cli.up.LocalStack;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code slope up}: the whole service on this machine, on loopback, until Ctrl-C. */
@Command(name = "up", mixinStandardHelpOptions = true,
        description = {"Runs the one-machine stack: Temporal (dev server when the temporal CLI is installed), Postgres "
                + "(as an unprivileged user), S3Proxy, the pipeline worker, a GPU worker and the REST API with the run page;"
                + " state under --home.",
            "SLOPE_DB_URL or SLOPE_S3_ENDPOINT (with SLOPE_S3_ACCESS_KEY, SLOPE_S3_SECRET_KEY) use existing servers "
                + "instead."})
public final class UpCommand implements Callable<Integer> {
    @Option(names = "--home", description = "state folder (default: ~/.slope)")
    Path home = Path.of(System.getProperty("user.home"), ".slope");

    @Option(names = "--temporal-port", description = "Temporal frontend port (default: ${DEFAULT-VALUE})")
    int temporalPort = 7233;

    @Option(names = "--ui-port", description = "Temporal Web UI port (default: ${DEFAULT-VALUE})")
    int uiPort = 8233;

    @Option(names = "--postgres-port", description = "Postgres port (default: ${DEFAULT-VALUE})")
    int postgresPort = 55432;

    @Option(names = "--s3-port", description = "S3Proxy port (default: ${DEFAULT-VALUE})")
    int s3Port = 9000;

    @Option(names = "--api-port", description = "REST API and run page port (default: ${DEFAULT-VALUE})")
    int apiPort = 8080;

    @Option(names = "--no-api", description = "start no REST API")
    boolean noApi;

    @Option(names = "--no-gpu-worker", description = "start no GPU worker: run one as its own process "
            + "(io.slope.gpuworker.GpuWorker) with the environment written to <home>/worker.env")
    boolean noGpuWorker;

    @Option(names = "--api-build", paramLabel = "DIR", description = "the api module's build output, its slope-api jar "
            + "and lib/ (default: api/target beside this CLI's build)")
    Path apiBuild;

    @Override
    public Integer call() throws Exception {
        LocalStack stack = LocalStack.start(home, new LocalStack.Ports(temporalPort, uiPort, postgresPort, s3Port),
                System.getenv(), line -> System.out.println("slope up: " + line), !noGpuWorker);
        ApiProcess api = null;
        if (!noApi) {
            try {
                api = ApiProcess.start(apiBuild == null ? checkoutApiBuild() : apiBuild, stack.clientEnvironment(),
                        apiPort, uiPort, home, line -> System.out.println("slope up: " + line));
            } catch (Exception | Error e) {
                stack.close();
                throw e;
            }
        }
        ApiProcess started = api;
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("slope up: stopping (a training chunk finishes its checkpoint first)");
            if (started != null) {
                started.close();
            }
            stack.close();
            stopped.countDown();
        }, "slope-up-shutdown"));
        System.out.println("slope up: ready; Ctrl-C stops everything");
        stopped.await();
        return 0;
    }

    /** api/target of this checkout: the CLI runs from cli/target, beside it. */
    private static Path checkoutApiBuild() throws Exception {
        Path cliJar = Path.of(UpCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        return cliJar.getParent().getParent().getParent().resolve("api").resolve("target");
    }
}
