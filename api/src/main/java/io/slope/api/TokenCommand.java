package io.slope.api;

import io.slope.api.auth.ApiTokens;
import io.slope.catalogue.Database;
import io.slope.catalogue.JdbcUrlDataSource;
import java.sql.SQLException;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code token create --user NAME [--admin]} and {@code token revoke --user NAME}, straight to the catalogue. */
@Command(name = "token", mixinStandardHelpOptions = true, description = "API bearer tokens (stored hashed).",
        subcommands = {TokenCommand.Create.class, TokenCommand.Revoke.class})
public final class TokenCommand {
    @Option(names = "--db", description = "JDBC URL of the catalogue (default: $SLOPE_DB_URL)",
            scope = CommandLine.ScopeType.INHERIT)
    String db;

    public static int run(String... args) {
        return new CommandLine(new TokenCommand()).execute(args);
    }

    ApiTokens tokens() {
        String url = db != null ? db : System.getenv("SLOPE_DB_URL");
        if (url == null || url.isBlank()) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--db or $SLOPE_DB_URL: the catalogue's "
                    + "JDBC URL, e.g. jdbc:postgresql://127.0.0.1:5432/slope?user=slope");
        }
        new Database(url, java.time.Duration.ofSeconds(30)).migrate();
        return new ApiTokens(new JdbcUrlDataSource(url));
    }

    @Command(name = "create", mixinStandardHelpOptions = true,
            description = "Creates a token and prints it (the only time it is shown; only its SHA-256 is stored).")
    static final class Create implements Callable<Integer> {
        @CommandLine.ParentCommand
        TokenCommand parent;

        @Option(names = "--user", required = true, description = "who the token acts for")
        String user;

        @Option(names = "--admin", description = "sees and acts on every user's runs")
        boolean admin;

        @Option(names = "--description", description = "a note for operators")
        String description;

        @Override
        public Integer call() throws SQLException {
            System.out.println(parent.tokens().create(user, admin, description));
            return 0;
        }
    }

    @Command(name = "revoke", mixinStandardHelpOptions = true, description = "Revokes every token of a user.")
    static final class Revoke implements Callable<Integer> {
        @CommandLine.ParentCommand
        TokenCommand parent;

        @Option(names = "--user", required = true)
        String user;

        @Override
        public Integer call() throws SQLException {
            System.out.println("revoked " + parent.tokens().revoke(user) + " token(s) of " + user);
            return 0;
        }
    }
}
