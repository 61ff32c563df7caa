package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.spec.Mode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The data-parallel reduce's buckets: one per block in block order, the rest last, every gradient exactly once. */
class GradientBucketsTest {
    @Test
    void oneBucketPerBlockThenTheRestCoveringEveryGradientOnce() {
        GptConfig config = TinyModels.config(Mode.SLOPE);
        try (CpuBackend cpu = new CpuBackend(1)) {
            GptModel model = GptModel.fromDenseWeights(cpu, config, DType.F64, GptModel.initialWeights(config, 1));
            model.attachAdapters(GptModel.initialAdapterWeights(config, 2, 1), 2, 0.5);
            List<Parameter> params = model.parameters();
            List<List<Tensor>> buckets = Trainer.gradientBuckets(params);
            assertEquals(config.layers() + 1, buckets.size());
            List<Tensor> flat = new ArrayList<>();
            buckets.forEach(flat::addAll);
            assertEquals(params.size(), flat.size());
            for (int l = 0; l < config.layers(); l++) {
                for (Tensor t : buckets.get(l)) {
                    Parameter p = params.stream().filter(q -> q.grad() == t).findFirst().orElseThrow();
                    assertEquals(true, p.name().startsWith("h." + l + "."), p.name() + " in bucket " + l);
                }
            }
            for (Tensor t : buckets.get(config.layers())) {
                Parameter p = params.stream().filter(q -> q.grad() == t).findFirst().orElseThrow();
                assertEquals(false, p.name().startsWith("h."), p.name() + " in the last bucket");
            }
            for (Parameter p : params) {
                assertSame(p.grad(), flat.stream().filter(t -> t == p.grad()).findFirst().orElseThrow());
            }
            model.close();
        }
    }
}
