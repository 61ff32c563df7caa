package io.slope.engine.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.Parameter;
import io.slope.engine.model.TinyModels;
import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What SLoPe training must preserve step after step: static row masks, exact zeros, the column-refresh schedule. */
class SparseTrainingInvariantsTest {
    private static final int STEPS = 7;
    private static final int REFRESH = 3;

    @Test
    void rowMasksStayStaticAndPrunedWeightsExactlyZeroWhileColumnMasksRefreshOnSchedule() {
        GptConfig config = new GptConfig(2, 2, 16, 8, 13, Mode.SLOPE, NmPattern.twoFour(), true);
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"sparsity": {"mode": "slope", "columnMaskRefresh": %d},
                 "optimizer": {"lr": 0.01, "weightDecay": 0.1},
                 "training": {"steps": %d, "batchSize": 2, "gradAccum": 1},
                 "data": {"corpus": ["unused"]}}
                """.formatted(REFRESH, STEPS));
        Map<String, double[]> init = GptModel.initialWeights(config, 3);
        try (CpuBackend backend = new CpuBackend(2)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, init);
            Map<String, int[]> rowMasksAtInit = new HashMap<>();
            Map<String, byte[]> columnMasks = new HashMap<>();
            for (Parameter p : model.parameters()) {
                if (p.isSparse()) {
                    int[] expected = NmMasks.rowKeptIndices(init.get(p.name()), p.sparse().dOut(), p.sparse().dIn(),
                            config.pattern());
                    assertArrayEquals(expected, backend.rowKeptIndices(p.sparse()), p.name() + " row mask at init");
                    rowMasksAtInit.put(p.name(), expected);
                    columnMasks.put(p.name(), backend.columnMask(p.sparse()));
                }
            }
            assertEquals(7, rowMasksAtInit.size(), "2 blocks × 4 linear layers, block 0's qkv dense");
            Trainer trainer = new Trainer(model, spec,
                    (step, micro) -> TinyModels.randomWindows(2, config.seqLen(), config.vocab(), 50 + step));
            for (int step = 0; step < STEPS; step++) {
                trainer.step(step);
                boolean refreshed = (step + 1) % REFRESH == 0;
                Map<String, double[]> dense = model.denseWeights();
                for (Parameter p : model.parameters()) {
                    if (!p.isSparse()) {
                        continue;
                    }
                    int[] kept = rowMasksAtInit.get(p.name());
                    assertArrayEquals(kept, backend.rowKeptIndices(p.sparse()), p.name() + " row mask is static");
                    assertPrunedExactlyZero(dense.get(p.name()), kept, p.sparse().dOut(), p.sparse().dIn(),
                            p.name());
                    byte[] now = backend.columnMask(p.sparse());
                    byte[] fromCurrentWeights = NmMasks.columnMask(dense.get(p.name()), p.sparse().dOut(),
                            p.sparse().dIn(), config.pattern());
                    if (refreshed) {
                        assertArrayEquals(fromCurrentWeights, now, p.name() + " column mask refreshed after step "
                                + step);
                    } else {
                        assertArrayEquals(columnMasks.get(p.name()), now, p.name() + " column mask kept after step "
                                + step);
                    }
                    columnMasks.put(p.name(), now);
                }
            }
            assertFalse(columnMasksAllEqualInit(backend, model, init, config),
                    "after several refreshes at least one column mask has moved (weights changed)");
        }
    }

    private static void assertPrunedExactlyZero(double[] w, int[] kept, int dOut, int dIn, String name) {
        int k = kept.length / dOut;
        for (int o = 0; o < dOut; o++) {
            boolean[] isKept = new boolean[dIn];
            for (int j = 0; j < k; j++) {
                isKept[kept[o * k + j]] = true;
            }
            for (int i = 0; i < dIn; i++) {
                if (!isKept[i]) {
                    assertEquals(0.0, w[o * dIn + i], name + " pruned weight [" + o + "," + i + "]");
                }
            }
        }
    }

    private static boolean columnMasksAllEqualInit(Backend backend, GptModel model, Map<String, double[]> init,
            GptConfig config) {
        for (Parameter p : model.parameters()) {
            if (p.isSparse()) {
                int dOut = p.sparse().dOut();
                int dIn = p.sparse().dIn();
                int[] kept = backend.rowKeptIndices(p.sparse());
                double[] wr = NmMasks.scatterKept(NmMasks.gatherKept(init.get(p.name()), kept, dOut, dIn), kept, dOut,
                        dIn);
                if (!java.util.Arrays.equals(NmMasks.columnMask(wr, dOut, dIn, config.pattern()),
                        backend.columnMask(p.sparse()))) {
                    return false;
                }
            }
        }
        return true;
    }
}
