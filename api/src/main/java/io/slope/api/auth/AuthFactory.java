package io.slope.api.auth;

import io.micronaut.context.annotation.Factory;
import jakarta.inject.Singleton;
import javax.sql.DataSource;

@Factory
final class AuthFactory {
    @Singleton
    ApiTokens apiTokens(DataSource dataSource) {
        return new ApiTokens(dataSource);
    }
}
