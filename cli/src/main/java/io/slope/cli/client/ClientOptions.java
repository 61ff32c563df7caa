package io.slope.cli.client;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** --api and --token, shared by every client command. */
public final class ClientOptions {
    @Option(names = "--api", paramLabel = "URL", description = "the API's address (default: $SLOPE_API, then api= in "
            + "~/.slope/config)")
    String api;

    @Option(names = "--token", paramLabel = "TOKEN", description = "bearer token (default: $SLOPE_TOKEN, then token= "
            + "in ~/.slope/config)")
    String token;

    public ApiClient client() {
        return ApiClient.resolve(api, token, System.getenv(), Path.of(System.getProperty("user.home")));
    }
}
