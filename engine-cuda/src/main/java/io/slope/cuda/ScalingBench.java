package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.parallel.Collective;
import io.slope.engine.parallel.CollectiveProvider;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import io.slope.engine.train.Trainer;
import io.slope.spec.BackendChoice;
import io.slope.spec.Mode;
import io.slope.spec.Preset;
import io.slope.spec.ResolvedSpec;
import io.slope.spec.RunSpec;
import io.slope.spec.RunSpecs;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Data-parallel scaling of whole training steps: one GPT-2 shape trained by 1 … N ranks, one thread and one GPU per
 * rank, through the production {@link Trainer} and the backend's collective (NCCL on CUDA). Weak scaling: every rank
 * runs one micro-batch of {@code batch} sequences per step, so the global batch grows with the ranks. Prints one JSON
 * line per rank count: rank 0's median step time after two warm-up steps, tokens/s over all ranks, and the efficiency
 * tokens/s(N) / (N · tokens/s(1)).
 *
 * <p>{@code ScalingBench preset mode[:refresh] batch steps ranks...}, e.g. {@code gpt2-medium slope 8 5 1 2}.
 */
public final class ScalingBench {
    private static final Duration RENDEZVOUS = Duration.ofMinutes(2);
    private static final int WARMUP = 2;

    private ScalingBench() {}

    public static void main(String[] args) throws Exception {
        Preset preset = Preset.fromWire(args[0]);
        if (preset == null) {
            throw new IllegalArgumentException("preset: unknown '" + args[0] + "'; allowed: " + Preset.wireNames());
        }
        String[] modeRefresh = args[1].split(":");
        Mode mode = Mode.fromWire(modeRefresh[0]);
        int refresh = modeRefresh.length > 1 ? Integer.parseInt(modeRefresh[1]) : 1;
        int batch = Integer.parseInt(args[2]);
        int steps = Integer.parseInt(args[3]);
        ResolvedSpec.Model shape = preset.model();
        GptConfig config = new GptConfig(shape.layers(), shape.heads(), shape.dModel(), shape.seqLen(), 50304, mode,
                NmPattern.twoFour(), true);
        Map<String, double[]> init = StepBench.randomWeights(config);
        double oneRank = 0;
        for (int i = 4; i < args.length; i++) {
            int ranks = Integer.parseInt(args[i]);
            double median = medianStepSeconds(config, init, spec(preset, mode, refresh, batch, ranks, steps), ranks,
                    steps);
            double tokensPerSecond = (double) ranks * batch * config.seqLen() / median;
            if (ranks == 1) {
                oneRank = tokensPerSecond;
            }
            System.out.printf("{\"bench\": \"scaling\", \"preset\": \"%s\", \"mode\": \"%s\", \"columnMaskRefresh\": %d, "
                    + "\"ranks\": %d, \"batchPerRank\": %d, \"stepSecondsMedian\": %.4f, \"tokensPerSecond\": %.0f, "
                    + "\"efficiency\": %s}%n", preset.wireName(), mode.wireName(), refresh, ranks, batch, median,
                    tokensPerSecond, oneRank > 0 ? String.format("%.3f", tokensPerSecond / (ranks * oneRank)) : "null");
        }
    }

    private static ResolvedSpec spec(Preset preset, Mode mode, int refresh, int batch, int ranks, int steps) {
        // Adapters never start inside the timed steps; a constant LR after a one-step warm-up.
        return RunSpecs.resolve(new RunSpec("scaling", new RunSpec.Model(preset.wireName(), null, null,
                null, null), new RunSpec.Sparsity(mode.wireName(), 2, 4, refresh, true), new RunSpec.Adapters(1.0,
                null), new RunSpec.Optimizer(3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 1, 1.0), new RunSpec.Training(
                1000 + WARMUP + steps, batch, ranks, 1L), new RunSpec.Data(List.of("synthetic"), null, "gpt2", 0.1),
                null, null, BackendChoice.CUDA.wireName(), null, null));
    }

    private static double medianStepSeconds(GptConfig config, Map<String, double[]> init, ResolvedSpec spec, int ranks,
            int steps) throws Exception {
        int T = config.seqLen();
        int B = spec.training().batchSize();
        CompletableFuture<String> uniqueId = new CompletableFuture<>();
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<List<Double>>> results = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                int rank = r;
                results.add(pool.submit(() -> {
                    try (CudaBackend backend = new CudaBackend(rank, CudaBackend.Precision.BF16);
                            Collective collective = join(backend.collectives(), rank, ranks, uniqueId);
                            GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32, init)) {
                        Trainer trainer = new Trainer(model, spec, (step, micro) -> windows(B, T, config.vocab(),
                                step, micro), collective);
                        List<Double> seconds = new ArrayList<>();
                        for (int s = 0; s < WARMUP + steps; s++) {
                            double t = trainer.step(s).seconds();
                            if (s >= WARMUP) {
                                seconds.add(t);
                            }
                        }
                        return seconds;
                    } catch (Exception e) {
                        uniqueId.completeExceptionally(e);
                        throw e;
                    }
                }));
            }
            List<Double> rank0 = results.get(0).get();
            for (Future<List<Double>> f : results) {
                f.get();
            }
            rank0.sort(null);
            return rank0.get(rank0.size() / 2);
        } finally {
            pool.shutdownNow();
        }
    }

    private static Collective join(CollectiveProvider provider, int rank, int ranks,
            CompletableFuture<String> uniqueId) throws Exception {
        if (ranks == 1) {
            return Collective.single();
        }
        if (rank > 0) {
            return provider.join(uniqueId.get(), rank, ranks, RENDEZVOUS);
        }
        CollectiveProvider.Rendezvous rendezvous = provider.listen(ranks, RENDEZVOUS);
        uniqueId.complete(rendezvous.uniqueId());
        return rendezvous.awaitPeers();
    }

    /** Random tokens, a pure function of (step, micro-batch): the timing does not depend on the text. */
    private static int[] windows(int B, int T, int vocab, long step, int micro) {
        int[] w = new int[B * (T + 1)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (int) Philox.uniformLong(11, step * 1024 + micro, i, vocab);
        }
        return w;
    }
}
