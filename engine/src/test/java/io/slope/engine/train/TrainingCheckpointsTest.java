package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.ChoosingBackend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.KernelChoices;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.checkpoint.LocalCheckpointStore;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.engine.parallel.Collective;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingCheckpointsTest {
    private static final GptConfig CONFIG = TinyModels.config(Mode.SLOPE);
    private static final ResolvedSpec SPEC = RunSpecCodec.parseResolved("""
            {"sparsity": {"mode": "slope", "columnMaskRefresh": 3},
             "training": {"steps": 4, "batchSize": 2, "gradAccum": 1},
             "data": {"corpus": ["unused"]}}
            """);
    private static final String H100 = "NVIDIA H100 80GB HBM3";

    @TempDir
    Path dir;

    /** Checkpoints written before the unused {@code lastColumnMaskRefreshStep} left the state still load. */
    @Test
    void aCheckpointWithTheRetiredRefreshStepRestoresTheSameModel() {
        try (CpuBackend backend = new CpuBackend(1);
                GptModel model = GptModel.fromDenseWeights(backend, CONFIG, DType.F32,
                        GptModel.initialWeights(CONFIG, 5))) {
            Checkpoint written = trainTwoSteps(model);
            assertFalse(written.state().has("lastColumnMaskRefreshStep"));
            written.state().put("lastColumnMaskRefreshStep", 0);

            TrainingCheckpoints.Resumed resumed = TrainingCheckpoints.restore(backend, CONFIG, written);

            assertEquals(2, resumed.stepsDone());
            try (GptModel restored = resumed.model()) {
                assertEquals(model.denseWeights().keySet(), restored.denseWeights().keySet());
                model.denseWeights().forEach((name, w) -> assertArrayEquals(w, restored.denseWeights().get(name),
                        name));
                for (int i = 0; i < model.parameters().size(); i++) {
                    Parameter p = model.parameters().get(i);
                    if (p.isSparse()) {
                        Parameter q = restored.parameters().get(i);
                        assertArrayEquals(backend.columnMask(p.sparse()), backend.columnMask(q.sparse()), p.name());
                        assertArrayEquals(backend.rowKeptIndices(p.sparse()), backend.rowKeptIndices(q.sparse()));
                    }
                }
            }
        }
    }

    /** Issue 14: the choices of a GPU's timed searches travel through a checkpoint on disk to the resuming backend. */
    @Test
    void kernelChoicesRecordedInACheckpointReachTheBackendThatRestoresIt() throws Exception {
        KernelChoices made = ChoosingBackend.madeOn(H100);
        Checkpoint written = checkpointTrainedOn(new ChoosingBackend(made));
        JsonNode recorded = written.state().get("kernelChoices");
        assertTrue(recorded.size() == 2 && recorded.has("validFor") && recorded.has("choices"), "docs/formats.md");
        assertEquals(H100, recorded.get("validFor").get("gpu").asText());
        assertEquals("config=2 splitK=1 splitKMode=0 splitKBuffers=0",
                recorded.get("choices").get("cusparseLt m=128 k=32 n=32").asText());
        LocalCheckpointStore store = new LocalCheckpointStore(dir);
        store.write(written, "test");
        Checkpoint loaded = store.load(2).checkpoint();
        ChoosingBackend resuming = new ChoosingBackend(ChoosingBackend.madeOn(H100));

        Optional<String> notice = restoreOn(resuming, loaded);

        assertEquals(List.of(made), resuming.reused());
        assertEquals(Optional.empty(), notice);
    }

    @Test
    void kernelChoicesMadeOnAnotherGpuAreNotReusedAndTheNoticeSaysSo() {
        Checkpoint written = checkpointTrainedOn(new ChoosingBackend(ChoosingBackend.madeOn("NVIDIA A100-SXM4-40GB")));
        ChoosingBackend resuming = new ChoosingBackend(ChoosingBackend.madeOn(H100));

        String notice = restoreOn(resuming, written).orElseThrow();

        assertEquals(List.of(), resuming.reused());
        assertTrue(notice.contains("NVIDIA A100-SXM4-40GB") && notice.contains(H100) && notice.contains("anew"),
                notice);
    }

    /** Checkpoints written before issue 14, or by the CPU backend, have no kernel choices; they still restore. */
    @Test
    void aCheckpointWithoutKernelChoicesRestoresAndASearchingBackendSaysItSearchesAnew() {
        Checkpoint written;
        try (CpuBackend cpu = new CpuBackend(1);
                GptModel model = GptModel.fromDenseWeights(cpu, CONFIG, DType.F32,
                        GptModel.initialWeights(CONFIG, 5))) {
            written = trainTwoSteps(model);
            TrainingCheckpoints.Resumed onCpu = TrainingCheckpoints.restore(cpu, CONFIG, written);
            onCpu.model().close();
            assertEquals(Optional.empty(), onCpu.kernelSearchNotice(), "the CPU backend searches nothing");
        }
        assertFalse(written.state().has("kernelChoices"), "the CPU backend has nothing to record");
        ChoosingBackend resuming = new ChoosingBackend(ChoosingBackend.madeOn(H100));

        String notice = restoreOn(resuming, written).orElseThrow();

        assertEquals(List.of(), resuming.reused());
        assertTrue(notice.contains("records no kernel choices"), notice);
    }

    @Test
    void malformedKernelChoicesAreRefusedNamingTheField() {
        Checkpoint written = checkpointTrainedOn(new ChoosingBackend(ChoosingBackend.madeOn(H100)));
        written.state().putObject("kernelChoices").put("validFor", 3);

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> restoreOn(new ChoosingBackend(ChoosingBackend.madeOn(H100)), written));

        assertTrue(e.getMessage().contains("state.kernelChoices"), e.getMessage());
    }

    /** The checkpoint after two steps of the tiny model on {@code chooser}'s backend, which is closed after. */
    private static Checkpoint checkpointTrainedOn(ChoosingBackend chooser) {
        try (Backend backend = chooser.backend();
                GptModel model = GptModel.fromDenseWeights(backend, CONFIG, DType.F32,
                        GptModel.initialWeights(CONFIG, 5))) {
            return trainTwoSteps(model);
        }
    }

    private static Checkpoint trainTwoSteps(GptModel model) {
        Trainer trainer = new Trainer(model, SPEC,
                (step, micro) -> TinyModels.randomWindows(2, CONFIG.seqLen(), CONFIG.vocab(), 9 + step));
        trainer.step(0);
        trainer.step(1);
        return TrainingCheckpoints.capture(model, trainer.optimizer(), Collective.single(), 2, SPEC, Map.of());
    }

    /** Restores {@code checkpoint} on {@code chooser}'s backend (closed after); the notice of the restore. */
    private static Optional<String> restoreOn(ChoosingBackend chooser, Checkpoint checkpoint) {
        try (Backend backend = chooser.backend()) {
            TrainingCheckpoints.Resumed resumed = TrainingCheckpoints.restore(backend, CONFIG, checkpoint);
            assertEquals(2, resumed.stepsDone());
            resumed.model().close();
            return resumed.kernelSearchNotice();
        }
    }
}
