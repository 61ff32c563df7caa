package io.slope.api.web;

import io.micronaut.core.io.ResourceResolver;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Produces;
import io.swagger.v3.oas.annotations.Hidden;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

/**
 * The run page ({@code /}, {@code /runs/{id}}: one page, its script reads the path) and Swagger UI. Every asset
 * comes from this server (classpath {@code public/} and WebJars), nothing from a CDN. The pages need no token; the
 * API calls they make do, and the page asks for one.
 */
@Hidden
@Controller
public class PageController {
    private final String runPage;
    private final String swaggerUi;

    public PageController(ResourceResolver resources) {
        this.runPage = read(resources, "classpath:public/index.html");
        this.swaggerUi = read(resources, "classpath:public/swagger-ui.html")
                .replace("SWAGGER_UI_VERSION", webjarVersion(resources, "swagger-ui"));
    }

    @Get
    @Produces(MediaType.TEXT_HTML)
    public String runs() {
        return runPage;
    }

    @Get("/runs/{id}")
    @Produces(MediaType.TEXT_HTML)
    public String run(String id) {
        return runPage;
    }

    @Get("/swagger-ui")
    @Produces(MediaType.TEXT_HTML)
    public String swaggerUi() {
        return swaggerUi;
    }

    private static String read(ResourceResolver resources, String path) {
        try (InputStream in = resources.getResourceAsStream(path)
                .orElseThrow(() -> new IllegalStateException(path + " is missing from the api jar"))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The version of a WebJar on the class path, which is part of its assets' paths. */
    private static String webjarVersion(ResourceResolver resources, String artifact) {
        String path = "classpath:META-INF/maven/org.webjars/" + artifact + "/pom.properties";
        try (InputStream in = resources.getResourceAsStream(path)
                .orElseThrow(() -> new IllegalStateException("WebJar " + artifact + " is missing"))) {
            Properties properties = new Properties();
            properties.load(in);
            return properties.getProperty("version");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
