package io.slope.api.web;

import io.micronaut.core.io.ResourceResolver;
import io.micronaut.http.HttpResponse;
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

    /**
     * The run page holds a token in the browser, so it runs only its own scripts and styles (no inline ones), may not
     * be framed (clickjacking), and sends no referrer (its path names a run) to the artifact links it opens.
     */
    static final String RUN_PAGE_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
            + "data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            + "frame-ancestors 'none'";

    @Get
    @Produces(MediaType.TEXT_HTML)
    public HttpResponse<String> runs() {
        return runPage();
    }

    @Get("/runs/{id}")
    @Produces(MediaType.TEXT_HTML)
    public HttpResponse<String> run(String id) {
        return runPage();
    }

    private HttpResponse<String> runPage() {
        return HttpResponse.ok(runPage).header("Content-Security-Policy", RUN_PAGE_POLICY)
                .header("X-Frame-Options", "DENY").header("Referrer-Policy", "no-referrer")
                .header("X-Content-Type-Options", "nosniff");
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
