package io.slope.api.runs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micronaut.context.ApplicationContext;
import io.micronaut.http.HttpStatus;
import io.slope.api.ApiHarness;
import io.slope.api.auth.Caller;
import io.slope.api.config.GpuSettings;
import io.slope.api.corpora.CorpusReferences;
import io.slope.api.problem.Problem;
import io.slope.api.problem.ProblemException;
import io.slope.api.quota.Quotas;
import io.slope.api.storage.Storage;
import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunPageReads;
import io.slope.spec.GpuMemoryEstimate;
import io.slope.spec.RunSpecCodec;
import io.slope.spec.RunSpecs;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A {@code cuda} run is checked against the memory of the service's GPUs (SLOPE_GPU_MEMORY_BYTES) at submit: over it,
 * a 400 naming the field to change, the estimate and the setting, and nothing stored; within it, admitted with the
 * estimate in its detail. Workflows are recorded, not started.
 */
class RunGpuMemoryTest {
    private static final long GPU_BYTES = 80_000_000_000L;
    private static ApplicationContext context;
    private static String corpus;

    @BeforeAll
    static void start() throws Exception {
        ApiHarness api = ApiHarness.get();
        context = api.server.getApplicationContext();
        corpus = api.corpus();
    }

    private static RunService service(RecordedStarts workflows) {
        return new RunService(context.getBean(RunCatalogue.class), context.getBean(RunPageReads.class), workflows,
                context.getBean(CorpusReferences.class), context.getBean(Storage.class), context.getBean(Quotas.class),
                new GpuSettings(GPU_BYTES));
    }

    /** {@code preset} at {@code batchSize} on {@code backend}, GPT-2 tokenized, the rest the tests' tiny run's. */
    private static String spec(String preset, int batchSize, String backend) {
        return ApiHarness.tinySpec("gpu-memory", corpus, 10)
                .replace("\"preset\": \"tiny\", \"layers\": 2, \"dModel\": 64, \"heads\": 4, \"seqLen\": 32",
                        "\"preset\": \"" + preset + "\"")
                .replace("\"batchSize\": 4", "\"batchSize\": " + batchSize)
                .replace("\"tokenizer\": \"char\"", "\"tokenizer\": \"gpt2\"")
                .replace("\"backend\": \"cpu\"", "\"backend\": \"" + backend + "\"");
    }

    @Test
    void aCudaRunLargerThanTheGpusIs400NamingTheBatchSizeThatFitsAndStoresNothing() throws Exception {
        RecordedStarts workflows = new RecordedStarts(context, null);
        Caller caller = new Caller("gpu-" + UUID.randomUUID(), false);
        String xl = spec("gpt2-xl", 8, "cuda");

        ProblemException refused = assertThrows(ProblemException.class, () -> service(workflows).submit(caller, xl));

        assertEquals(HttpStatus.BAD_REQUEST, refused.status());
        assertEquals("gpu-memory-exceeded", refused.slug());
        long estimate = GpuMemoryEstimate.training(RunSpecCodec.parseResolved(xl), RunSpecs.GPT2_VOCAB_SIZE)
                .totalBytes();
        assertEquals(new Problem.Limit("SLOPE_GPU_MEMORY_BYTES", GPU_BYTES, estimate), refused.limit());
        Problem.FieldProblem error = refused.errors().getFirst();
        assertEquals("training.batchSize", error.field());
        assertTrue(error.message().contains("but the GPUs have 74.51 GiB; lower training.batchSize to 4 (the "
                + "largest that fits"), error.message());
        assertEquals(List.of(), workflows.started, "no workflow started");
        assertTrue(context.getBean(RunCatalogue.class).page(caller.user(), null, null, 10).isEmpty(),
                "no run stored");
    }

    @Test
    void aCudaRunThatFitsIsAdmittedWithItsEstimateInItsDetail() throws Exception {
        String small = spec("gpt2-small", 8, "cuda");

        RunViews.RunDetail run = service(new RecordedStarts(context, null))
                .submit(new Caller("gpu-" + UUID.randomUUID(), false), small);

        GpuMemoryEstimate estimate = GpuMemoryEstimate.training(RunSpecCodec.parseResolved(small),
                RunSpecs.GPT2_VOCAB_SIZE);
        assertEquals(new RunViews.GpuMemoryView(estimate.totalBytes(), GPU_BYTES, estimate.toString()),
                run.gpuMemory());
    }

    @Test
    void otherBackendsAreNotCheckedAgainstTheGpus() throws Exception {
        RunViews.RunDetail run = service(new RecordedStarts(context, null))
                .submit(new Caller("gpu-" + UUID.randomUUID(), false), spec("gpt2-xl", 64, "cpu"));

        assertNull(run.gpuMemory());
    }
}
