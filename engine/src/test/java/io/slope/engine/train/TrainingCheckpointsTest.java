package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.slope.engine.backend.DType;
import io.slope.engine.checkpoint.Checkpoint;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.engine.parallel.Collective;
import io.slope.spec.Mode;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecCodec;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TrainingCheckpointsTest {

    /** Checkpoints written before the unused {@code lastColumnMaskRefreshStep} left the state still load. */
    @Test
    void aCheckpointWithTheRetiredRefreshStepRestoresTheSameModel() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        RunSpec spec = RunSpecCodec.parseResolved("""
                {"sparsity": {"mode": "slope", "columnMaskRefresh": 3},
                 "training": {"steps": 4, "batchSize": 2, "gradAccum": 1},
                 "data": {"corpus": ["unused"]}}
                """);
        try (CpuBackend backend = new CpuBackend(1);
                GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32,
                        GptModel.initialWeights(config, 5))) {
            Trainer trainer = new Trainer(model, spec,
                    (step, micro) -> TinyModels.randomWindows(2, config.seqLen(), config.vocab(), 9 + step));
            trainer.step(0);
            trainer.step(1);
            Checkpoint written = TrainingCheckpoints.capture(model, trainer.optimizer(), Collective.single(), 2, spec,
                    Map.of());
            assertFalse(written.state().has("lastColumnMaskRefreshStep"));
            written.state().put("lastColumnMaskRefreshStep", 0);

            TrainingCheckpoints.Resumed resumed = TrainingCheckpoints.restore(backend, config, written);

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
}
