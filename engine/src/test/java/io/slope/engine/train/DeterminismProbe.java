package io.slope.engine.train;

import io.slope.engine.data.ArrayTokens;
import io.slope.engine.data.DataLoader;
import io.slope.engine.backend.DType;
import io.slope.engine.cpu.CpuBackend;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.TinyModels;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpecCodec;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;

/**
 * Trains a small SLoPe model for a few steps and prints a SHA-256 of every loss and weight bit. Run in-process and
 * as a separate {@code -Xint} JVM by {@link DeterminismTest}.
 */
public final class DeterminismProbe {
    static final int STEPS = 3;

    private DeterminismProbe() {}

    public static void main(String[] args) throws Exception {
        System.out.println(fingerprint(Integer.parseInt(args[0])));
    }

    static String fingerprint(int threads) throws NoSuchAlgorithmException {
        // Large enough that every kernel splits its work over threads (Parallel inlines small ranges).
        GptConfig config = new GptConfig(2, 4, 64, 16, 13, Mode.SLOPE, NmPattern.twoFour(), true);
        ResolvedSpec spec = RunSpecCodec.parseResolved("""
                {"sparsity": {"mode": "slope", "columnMaskRefresh": 2},
                 "optimizer": {"lr": 0.01, "warmupSteps": 1},
                 "training": {"steps": 10, "batchSize": 4, "gradAccum": 2, "seed": 9},
                 "data": {"corpus": ["unused"]}}
                """);
        int[] corpus = TinyModels.randomWindows(64, config.seqLen(), config.vocab(), 77);
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        try (CpuBackend backend = new CpuBackend(threads)) {
            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32,
                    GptModel.initialWeights(config, spec.training().seed()));
            Trainer trainer = new Trainer(model, spec, new DataLoader(new ArrayTokens(corpus), 9, config.seqLen(), 4, 2));
            for (int step = 0; step < STEPS; step++) {
                update(sha, trainer.step(step).loss());
            }
            for (Map.Entry<String, double[]> e : model.denseWeights().entrySet()) {
                for (double v : e.getValue()) {
                    update(sha, v);
                }
            }
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    private static void update(MessageDigest sha, double v) {
        long bits = Double.doubleToRawLongBits(v);
        for (int i = 0; i < 8; i++) {
            sha.update((byte) (bits >>> (8 * i)));
        }
    }
}
