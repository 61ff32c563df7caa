package io.slope.api.runs;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.RequestAttribute;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.slope.api.auth.Caller;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.runs.RunViews.Artifacts;
import io.slope.api.runs.RunViews.Metrics;
import io.slope.api.runs.RunViews.RanksRequest;
import io.slope.api.runs.RunViews.RunDetail;
import io.slope.api.runs.RunViews.RunPage;
import io.slope.api.runs.RunViews.SubmitRequest;
import io.slope.catalogue.RunStatus;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.Parameter;
import io.swagger.v3.oas.annotations.links.Link;
import io.swagger.v3.oas.annotations.links.LinkParameter;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.security.SecurityRequirement;
import io.swagger.v3.oas.annotations.tags.Tag;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import java.io.IOException;
import java.net.URI;
import java.sql.SQLException;
import java.util.UUID;

/**
 * The runs endpoints of {@code /api/v1} (README, "The REST API"). Thin: parsing and status codes here, everything else
 * in {@link RunService}.
 */
@Controller("/api/v1/runs")
@ExecuteOn(TaskExecutors.BLOCKING)
@Tag(name = "runs")
@SecurityRequirement(name = "bearer")
@ApiResponse(responseCode = "401", description = "no, a malformed or an unknown bearer token",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
public class RunsController {
    /** The run's id in an answer that is a run: what the OpenAPI links pass on (schemathesis's stateful phase). */
    private static final String ID = "$response.body#/id";

    private final RunService runs;

    public RunsController(RunService runs) {
        this.runs = runs;
    }

    @Operation(summary = "Submit a run",
            description = "Validates the run spec with the spec codec (errors name each field) and the run options "
                    + "against it, stores the run QUEUED with its options and starts its workflow run-<id> on the "
                    + "slope-pipeline task queue.")
    @RequestBody(required = true, description = "a run spec (docs/spec.md), and optionally beside its fields "
            + "\"options\": how the run is driven, e.g. {\"ranks\": 2}; any left out take the service's default",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = SubmitRequest.class)))
    @ApiResponse(responseCode = "201", description = "stored and started",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "metrics", operationId = "metrics", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "pause", operationId = "pause", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "resume", operationId = "resume", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "setRanks", operationId = "setRanks", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "retry", operationId = "retry", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "delete", operationId = "delete", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "artifacts", operationId = "artifacts", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "400", description = "the spec or the options are invalid; errors[] names each "
            + "field (options.ranks, ...)",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "429", description = "over one of the caller's quotas; limit names it, its value and "
            + "the usage",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "413", description = "a body over SLOPE_API_MAX_JSON_BYTES; limit names it",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post(consumes = MediaType.APPLICATION_JSON)
    public HttpResponse<RunDetail> submit(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @Body @Nullable String spec) throws SQLException {
        RunDetail run = runs.submit(caller, spec);
        return HttpResponse.created(run, URI.create(run.links().self()));
    }

    @Operation(summary = "List runs", description = "Newest first; your own runs (an admin sees everyone's).")
    @ApiResponse(responseCode = "200", description = "a page of runs",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunPage.class)),
            links = @Link(name = "detail", operationId = "detail",
                    parameters = @LinkParameter(name = "id", expression = "$response.body#/items/0/id")))
    @Get
    public RunPage list(HttpRequest<?> request,
            @Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @Parameter(description = "only runs with this status") @Nullable @QueryValue RunStatus status,
            @Parameter(description = "nextCursor of the previous page") @Nullable @QueryValue String cursor,
            @Parameter(description = "runs per page, 1 to 100 (default 20)") @Nullable @QueryValue @Min(1) @Max(100)
                    Integer limit) throws SQLException {
        requireValues(request, "status", "limit");
        return runs.list(caller, status, cursor, limit == null ? 20 : limit);
    }

    @Operation(summary = "One run", description = "Status, stage, step, tokens/s, ETA, the last committed "
            + "checkpoint, evaluation results, error, stage timeline, checkpoints and recent events.")
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "200", description = "the run",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "metrics", operationId = "metrics", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "pause", operationId = "pause", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "resume", operationId = "resume", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "setRanks", operationId = "setRanks", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "retry", operationId = "retry", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "delete", operationId = "delete", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "artifacts", operationId = "artifacts", parameters = @LinkParameter(name = "id", expression = ID))})
    @Get("/{id}")
    public RunDetail detail(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException {
        return runs.detail(caller, id);
    }

    /**
     * An empty value ({@code ?limit=}) is not the parameter left out: the framework binds it as absent, so without
     * this a mistyped query got the defaults instead of a 400 (found by schemathesis's negative_data_rejection).
     */
    private static void requireValues(HttpRequest<?> request, String... names) {
        for (String name : names) {
            if (request.getParameters().getAll(name).stream().anyMatch(String::isBlank)) {
                throw ProblemException.badField(name, "empty; give a value or leave " + name + " out");
            }
        }
    }

    @Operation(summary = "Loss and learning-rate curves",
            description = "One sample per optimizer step after afterStep (at most limit), and the evaluations from "
                    + "step afterStep on (at most limit).")
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Get("/{id}/metrics")
    public Metrics metrics(HttpRequest<?> request,
            @Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id,
            @Parameter(description = "only steps after this one (default 0)") @Nullable @QueryValue @Min(0)
                    Integer afterStep,
            @Parameter(description = "samples, and evaluations, at most: 1 to 10000 (default 10000)") @Nullable @QueryValue @Min(1)
                    @Max(10000) Integer limit) throws SQLException {
        requireValues(request, "afterStep", "limit");
        return runs.metrics(caller, id, afterStep == null ? 0 : afterStep, limit == null ? 10_000 : limit);
    }

    @Operation(summary = "Cancel a run",
            description = "The running chunk flushes a checkpoint; the run ends CANCELLED.")
    @ApiResponse(responseCode = "202", description = "cancellation requested",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "retry", operationId = "retry", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "delete", operationId = "delete", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "the run has finished",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post("/{id}/cancel")
    @Status(HttpStatus.ACCEPTED)
    public RunDetail cancel(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException {
        return runs.cancel(caller, id);
    }

    @Operation(summary = "Pause a run", description = "Training stops at the next step with a checkpoint flushed.")
    @ApiResponse(responseCode = "202", description = "the workflow accepted the pause",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "resume", operationId = "resume", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "setRanks", operationId = "setRanks", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "finished, already paused, or finalizing",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "503", description = "the workflow did not answer in time",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post("/{id}/pause")
    @Status(HttpStatus.ACCEPTED)
    public RunDetail pause(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException {
        return runs.pause(caller, id);
    }

    @Operation(summary = "Resume a paused run")
    @ApiResponse(responseCode = "202", description = "the workflow accepted the resume",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "pause", operationId = "pause", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "not paused, or finished",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "503", description = "the workflow did not answer in time",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post("/{id}/resume")
    @Status(HttpStatus.ACCEPTED)
    public RunDetail resume(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException {
        return runs.resume(caller, id);
    }

    @Operation(summary = "Change the data-parallel ranks of a run",
            description = "Sent to the run's workflow (the setRanks Update) and stored once the workflow has "
                    + "accepted it: the chunks that start from now on, and any restart of the run (reconciler, "
                    + "retry), train on this many ranks; the running chunk keeps its own.")
    @RequestBody(required = true, content = @Content(mediaType = MediaType.APPLICATION_JSON,
            schema = @Schema(implementation = RanksRequest.class)))
    @ApiResponse(responseCode = "202", description = "the workflow accepted the new ranks",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "pause", operationId = "pause", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "400", description = "ranks missing, out of 1..64, or not dividing the run's "
            + "training.gradAccum",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "finished, or no open workflow",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "503", description = "the workflow did not answer in time",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "429", description = "over one of the caller's quotas; limit names it, its value and "
            + "the usage",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "413", description = "a body over SLOPE_API_MAX_JSON_BYTES; limit names it",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post(value = "/{id}/ranks", consumes = MediaType.APPLICATION_JSON)
    @Status(HttpStatus.ACCEPTED)
    public RunDetail setRanks(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id, @Body @Nullable String body) throws SQLException {
        return runs.setRanks(caller, id, body);
    }

    @Operation(summary = "Retry a finished run from a stage",
            description = "Starts the run's workflow again at fromStage; earlier stages' stored results are reused.")
    @ApiResponse(responseCode = "202", description = "queued again",
            content = @Content(mediaType = MediaType.APPLICATION_JSON,
                    schema = @Schema(implementation = RunDetail.class)),
            links = {
                    @Link(name = "detail", operationId = "detail", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "cancel", operationId = "cancel", parameters = @LinkParameter(name = "id", expression = ID)),
                    @Link(name = "pause", operationId = "pause", parameters = @LinkParameter(name = "id", expression = ID))})
    @ApiResponse(responseCode = "400", description = "fromStage missing or unknown",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "not finished, or an earlier stage has no stored result",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "429", description = "over one of the caller's quotas; limit names it, its value and "
            + "the usage",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Post("/{id}/retry")
    @Status(HttpStatus.ACCEPTED)
    public RunDetail retry(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id,
            @Parameter(description = "prepareData, sparsePhase, adapterPhase, merge, eval, export or finalize")
                    @Nullable @QueryValue String fromStage) throws SQLException {
        return runs.retry(caller, id, fromStage);
    }

    @Operation(summary = "Delete a finished run with its objects", description = "Checkpoints and exports in the "
            + "object store first, then the catalogue rows.")
    @ApiResponse(responseCode = "204", description = "deleted")
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @ApiResponse(responseCode = "409", description = "not finished: cancel it first",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Delete("/{id}")
    @Status(HttpStatus.NO_CONTENT)
    public void delete(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException, IOException {
        runs.delete(caller, id);
    }

    @Operation(summary = "Exported files with presigned download URLs",
            description = "URLs are signed for the public object-store endpoint and need no token.")
    @ApiResponse(responseCode = "404", description = "no such run, or another user's",
            content = @Content(mediaType = Problem.MEDIA_TYPE, schema = @Schema(implementation = Problem.class)))
    @Get("/{id}/artifacts")
    public Artifacts artifacts(@Parameter(hidden = true) @RequestAttribute(Caller.ATTRIBUTE) Caller caller,
            @PathVariable UUID id) throws SQLException, IOException {
        return runs.artifacts(caller, id);
    }
}
