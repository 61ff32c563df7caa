package io.slope.api.corpora;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpHeaders;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Header;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.RequestAttribute;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.slope.api.auth.Caller;
import io.slope.api.problem.Problem;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.Parameter;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.security.SecurityRequirement;
import io.swagger.v3.oas.annotations.tags.Tag;
import java.io.IOException;
import java.io.InputStream;
import java.sql.SQLException;

@Controller("/api/v1/datasets")
@ExecuteOn(TaskExecutors.BLOCKING)
@Tag(name = "datasets")
@SecurityRequirement(name = "bearer")
public class CorpusController {
    private final CorpusUploads uploads;

    public CorpusController(CorpusUploads uploads) {
        this.uploads = uploads;
    }

    @Operation(summary = "Upload a corpus",
            description = "The request body is the corpus file (UTF-8 text), streamed to the object store and hashed. "
                    + "Returns its id (the SHA-256) and the s3:// uri to list in a spec's data.corpus (or "
                    + "data.validation, for held-out text). The same content uploaded again returns the same id (200 "
                    + "instead of 201).")
    @ApiResponse(responseCode = "201", description = "stored")
    @ApiResponse(responseCode = "200", description = "this content was already stored")
    @ApiResponse(responseCode = "400", description = "empty body or a bad filename",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "401", description = "no or an unknown bearer token",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "413", description = "larger than the configured limit",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "429", description = "over the caller's storage quota; limit names it, its value and "
            + "the usage",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post(consumes = {MediaType.APPLICATION_OCTET_STREAM, MediaType.TEXT_PLAIN})
    public HttpResponse<CorpusView> upload(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @Body InputStream body,
            @Parameter(description = "the file's name, kept for people") @Nullable @QueryValue String filename,
            @Parameter(hidden = true) @Nullable @Header(HttpHeaders.CONTENT_LENGTH) Long contentLength)
            throws IOException, SQLException {
        CorpusUploads.Uploaded uploaded = uploads.upload(caller, body, contentLength, filename);
        var row = uploaded.corpus();
        CorpusView view = new CorpusView(row.id(), uploaded.uri(), row.bytes(), row.id(), row.filename(),
                row.createdAt());
        return uploaded.created() ? HttpResponse.created(view) : HttpResponse.ok(view);
    }
}
