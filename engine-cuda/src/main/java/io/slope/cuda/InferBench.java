package io.slope.cuda;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.Backends;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.KvCache;
import io.slope.engine.rng.Philox;
import io.slope.spec.Mode;
import io.slope.spec.ResolvedSpec;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Times inference through the production model (the path {@code slope sample} takes): prefill, a batch of full
 * contexts through {@link GptModel#prefill}, and KV-cache decoding, one token per sequence through
 * {@link GptModel#decode} with its logits downloaded as a sampler needs them. {@code dense} is the dense model;
 * {@code slope} is a trained SLoPe model in its inference form: 2:4 layers (block 0's qkv dense) with adapters of the
 * default rank, A pruned 2:4 along d_in and scale 1 (docs/method.md, {@link Merge#inferenceForm}), so each adapted layer
 * runs as one 2:4 GEMM over [W^R; Aᵀ] and one accumulate ({@link Backend#sparseLowRankForward}; a decoding step's few
 * rows on the few-rows kernel instead). On the GPU its decoding is timed twice, the second time on cuSPARSELt's padded
 * path (mode {@code slope-cusparselt}, as SLOPE_SPARSE_DECODE=0 runs it). Weights are random: their values do not
 * change the time. With SLOPE_CUDA_PROFILE=1 it also prints the time per operation of each phase.
 */
public final class InferBench {
    private static final ObjectMapper JSON = new ObjectMapper()
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE);
    /** Appended to the mode of the lines that time a sparse model's decoding on cuSPARSELt's padded path. */
    private static final String PADDED_SUFFIX = "-cusparselt";

    /**
     * What to run: prefill of {@code prefillBatch} full contexts; decoding of {@code decodeTokens} tokens after a
     * {@code promptLength}-token prompt at each of {@code decodeBatches}; {@code warmup} untimed repeats (prefill) or
     * tokens (decode) first, then {@code repeats} timed prefills.
     */
    public record Setup(StepBench.Shape shape, int prefillBatch, List<Integer> decodeBatches, int promptLength,
            int decodeTokens, int warmup, int repeats, String backend, int threads, String commit) {
        public Setup {
            if (promptLength < 1 || promptLength + warmup + decodeTokens > shape.seqLen()) {
                throw new IllegalArgumentException("--prompt " + promptLength + " + --warmup " + warmup
                        + " + --tokens " + decodeTokens + " must fit the context of " + shape.seqLen()
                        + " positions (prompt at least 1)");
            }
            if (prefillBatch < 1 || decodeTokens < 1 || repeats < 1 || warmup < 0
                    || decodeBatches.stream().anyMatch(b -> b < 1)) {
                throw new IllegalArgumentException("batches, --tokens and --repeats must be at least 1, --warmup at"
                        + " least 0");
            }
        }
    }

    /** One line of {@code infer-<UTC>.jsonl}: tokens/s of one phase at one batch. */
    public record Measurement(String system, String model, String mode, String phase, int batch, long tokensPerS,
            double msMedian, int adapterRank, String device, String commit, String utc, int layers, int heads,
            int dModel, int seqLen, int vocab, int promptLength, String backend) {

        public String toJson() {
            try {
                return JSON.writeValueAsString(this);
            } catch (JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private InferBench() {}

    /** Prefill, then decoding at each batch, of one mode ({@code dense} or {@code slope}) on a backend of its own. */
    public static List<Measurement> measure(Setup setup, String modeName) {
        Mode mode = mode(modeName);
        ResolvedSpec spec = StepBench.spec(setup.shape(), mode, 1, setup.prefillBatch(), 1, 1, setup.backend(),
                setup.threads());
        StepBench.Shape s = setup.shape();
        GptConfig config = GptConfig.of(spec, s.vocab());
        int rank = mode.sparse() ? spec.adapters().rank() : 0;
        List<Measurement> out = new ArrayList<>();
        try (Backend backend = Backends.open(spec);
                GptModel model = GptModel.fromDenseWeights(backend, config, DType.F32,
                        StepBench.randomWeights(config), GptModel.Use.INFERENCE)) {
            if (mode.sparse()) {
                model.attachAdapters(inferenceFormAdapters(config, rank), rank, 1.0);
            }
            CudaBackend cuda = backend instanceof CudaBackend c ? c : null;
            String device = cuda != null ? cuda.deviceName() : backend.name();
            Tensor sync = model.parameters().getLast().value();
            KvCache prefillCache = model.kvCache(setup.prefillBatch());
            int[] contexts = tokens(setup.prefillBatch() * s.seqLen(), s.vocab(), 1);
            List<Double> millis = new ArrayList<>();
            for (int i = 0; i < setup.warmup() + setup.repeats(); i++) {
                if (i == setup.warmup() && cuda != null) {
                    cuda.profile().clear();
                }
                long start = System.nanoTime();
                model.prefill(prefillCache, contexts, s.seqLen());
                backend.download(sync);
                if (i >= setup.warmup()) {
                    millis.add((System.nanoTime() - start) / 1e6);
                }
            }
            out.add(measurement(setup, config, modeName, "prefill", setup.prefillBatch(), s.seqLen(), millis, rank,
                    device, backend.name()));
            printProfile(cuda, "prefill", setup.repeats());
            for (int batch : setup.decodeBatches()) {
                KvCache cache = model.kvCache(batch);
                List<Double> steps = decode(setup, model, cache, batch, cuda);
                out.add(measurement(setup, config, modeName, "decode", batch, 1, steps, rank, device, backend.name()));
                printProfile(cuda, "decode at batch " + batch, setup.decodeTokens());
                if (cuda != null && mode.sparse() && cuda.decodesOnFewRowsKernel()) {
                    // The same steps with the 2:4 layers on cuSPARSELt's padded path (SLOPE_SPARSE_DECODE=0): the
                    // few-rows kernel's gain, measured in this run.
                    cuda.decodeOnFewRowsKernel(false);
                    try {
                        List<Double> padded = decode(setup, model, cache, batch, cuda);
                        out.add(measurement(setup, config, modeName + PADDED_SUFFIX, "decode", batch, 1, padded, rank,
                                device, backend.name()));
                        printProfile(cuda, "decode at batch " + batch + " on cuSPARSELt", setup.decodeTokens());
                    } finally {
                        cuda.decodeOnFewRowsKernel(true);
                    }
                }
            }
        }
        return out;
    }

    /** The prompt prefilled into {@code cache}, then the milliseconds of each timed decoding step after the warm-up. */
    private static List<Double> decode(Setup setup, GptModel model, KvCache cache, int batch, CudaBackend cuda) {
        StepBench.Shape s = setup.shape();
        model.prefill(cache, tokens(batch * s.seqLen(), s.vocab(), 2), setup.promptLength());
        int[] next = tokens(batch, s.vocab(), 3);
        List<Double> millis = new ArrayList<>();
        for (int i = 0; i < setup.warmup() + setup.decodeTokens(); i++) {
            if (i == setup.warmup() && cuda != null) {
                cuda.profile().clear();
            }
            long start = System.nanoTime();
            model.decode(cache, next);
            if (i >= setup.warmup()) {
                millis.add((System.nanoTime() - start) / 1e6);
            }
        }
        return millis;
    }

    /** With SLOPE_CUDA_PROFILE=1, the operations of one prefill or decoding step (each synchronised). */
    private static void printProfile(CudaBackend cuda, String what, int repeats) {
        if (cuda != null && !cuda.profile().isEmpty()) {
            System.out.println("  " + what + ":");
            StepBench.printProfile(cuda, repeats);
        }
    }

    /** dense or slope: the two sparse modes serve the same 2:4 model. */
    public static Mode mode(String name) {
        Mode mode = Mode.fromWire(name);
        if (mode == Mode.SPARSE_NO_DOUBLE_PRUNE) {
            throw new IllegalArgumentException("mode '" + name + "': inference compares dense and slope (the two"
                    + " sparse modes serve the same 2:4 model)");
        }
        return mode;
    }

    private static Measurement measurement(Setup setup, GptConfig config, String mode, String phase, int batch,
            int tokensPerSequence, List<Double> millis, int rank, String device, String backend) {
        List<Double> sorted = millis.stream().sorted().toList();
        double median = sorted.get(sorted.size() / 2);
        long tokensPerS = Math.round(batch * (double) tokensPerSequence / (median / 1e3));
        return new Measurement("slope", setup.shape().name(), mode, phase, batch, tokensPerS,
                Math.round(median * 1e6) / 1e6, rank, device, setup.commit(),
                Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(), config.layers(), config.heads(),
                config.dModel(), config.seqLen(), config.vocab(), setup.promptLength(), backend);
    }

    private static int[] tokens(int n, int vocab, long stream) {
        return IntStream.range(0, n).map(i -> (int) Philox.uniformLong(11, stream, i, vocab)).toArray();
    }

    /** N(0, 0.02) adapters in the inference form: A pruned as {@link Merge#inferenceForm} prunes it, so it is 2:4. */
    private static Map<String, double[]> inferenceFormAdapters(GptConfig config, int rank) {
        Map<String, double[]> weights = GptModel.initialAdapterWeights(config, rank, 1);
        weights.replaceAll((name, w) -> {
            long stream = Philox.stream("bench/" + name);
            for (int i = 0; i < w.length; i++) {
                w[i] = 0.02 * Philox.normal(1, stream, i);
            }
            return name.endsWith(".lora_A") ? Merge.pruneAdapterA(w, rank, config.pattern()) : w;
        });
        return weights;
    }
}
