package io.slope.cli;

import io.slope.cli.up.LocalStack;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code slope up}: the whole service on this machine, on loopback, until Ctrl-C. */
@Command(name = "up", mixinStandardHelpOptions = true,
        description = {"Runs the one-machine stack: Temporal (dev server when the temporal CLI is installed), Postgres "
                + "(as an unprivileged user), S3Proxy, the pipeline worker and a GPU worker; state under --home.",
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

    @Override
    public Integer call() throws Exception {
        LocalStack stack = LocalStack.start(home, new LocalStack.Ports(temporalPort, uiPort, postgresPort, s3Port),
                System.getenv(), line -> System.out.println("slope up: " + line));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("slope up: stopping (a training chunk finishes its checkpoint first)");
            stack.close();
            stopped.countDown();
        }, "slope-up-shutdown"));
        System.out.println("slope up: ready; Ctrl-C stops everything");
        stopped.await();
        return 0;
    }
}
