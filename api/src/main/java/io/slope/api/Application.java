package io.slope.api;

import io.micronaut.runtime.Micronaut;
import io.swagger.v3.oas.annotations.OpenAPIDefinition;
import io.swagger.v3.oas.annotations.enums.SecuritySchemeType;
import io.swagger.v3.oas.annotations.info.Info;
import io.swagger.v3.oas.annotations.security.SecurityScheme;
import java.util.Arrays;

/**
 * The slope API server; {@code token ...} instead runs the token command against the same database
 * ({@code SLOPE_DB_URL}) without starting the server.
 */
@OpenAPIDefinition(info = @Info(title = "slope", version = "1",
        description = "Pretrain sparse GPT-2 models (SLoPe) as durable pipelines. Every error is "
                + "application/problem+json; errors[] names the fields."))
@SecurityScheme(name = "bearer", type = SecuritySchemeType.HTTP, scheme = "bearer",
        description = "a token made with `slope token create --user NAME`")
public final class Application {
    private Application() {}

    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("token")) {
            System.exit(TokenCommand.run(Arrays.copyOfRange(args, 1, args.length)));
        }
        Micronaut.build(args).mainClass(Application.class).banner(false).start();
    }
}
