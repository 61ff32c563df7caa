package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class GpuMemoryEstimateTest {
    private static final int CHAR_VOCAB = 65;
    private static final long MIB = 1L << 20;
    private static final long GB = 1_000_000_000L;

    @Test
    void tinyBreakdownMatchesTheHandCount() {
        // Defaults: d 64, 4 heads, 2 layers, T 64, batch 8 (512 tokens); slope 2:4 with block 0's qkv dense; adapters
        // of rank 4 join at step 990 of 1000 on the 7 sparse layers.
        long parameters = 108_352; // MemoryEstimateTest's hand count
        long sparse = 2 * 12 * 64 * 64 - 3 * 64 * 64; // 86,016
        long adapters = 7_168;
        long masters = parameters - sparse / 2 + adapters; // 72,512
        long gemmWeights = 65 * 64 + 2 * 12 * 64 * 64; // wte and the blocks' linears: 102,464
        long masks = sparse / 2 + sparse / 8; // a byte per kept weight (the half), a bit per weight (column mask)
        // both operands compressed, 1.125 bytes per weight and a compression buffer as large
        long operands = 2 * (gemmWeights - sparse + adapters) + masks + sparse * 9 / 2;
        long perLayer = 2 * 18 * 64 + 4 * 4 + 4 * 2 * 4 + 4 * 64; // bf16 buffers, LN and attention stats, fp32 copy
        long once = 2 * (2 * 64 + CHAR_VOCAB + 14 * 64) + 20; // embedding, ln_f, logits, gradient buffers; ids, losses
        long xa = 2 * 4 * (7 + 1);
        long perLayer32 = 4 * 18 * 64 + 4 * 4 + 4 * 2 * 4 + 4 * 64;
        long once32 = 4 * (2 * 64 + CHAR_VOCAB + 14 * 64) + 20;
        long evaluation = 8 * masters + masks + 8 * sparse + 512 * (2 * perLayer32 + once32 + 2 * xa);

        GpuMemoryEstimate estimate = GpuMemoryEstimate.training(Specs.resolved(""), CHAR_VOCAB);

        assertEquals(new GpuMemoryEstimate(4 * masters, 4 * masters, 8 * masters, operands,
                512 * (2 * perLayer + once + xa), evaluation, 64 * MIB + 8 * 4 * 64 * 64), estimate);
        assertEquals(290_048 + 290_048 + 580_096 + 488_064 + 3_828_736 + 8_657_920 + 67_239_936,
                estimate.totalBytes());
    }

    @Test
    void gpt2SmallDenseTrainingStepMatchesTheHandCount() {
        // GPT-2 124M at the benchmarks' vocabulary (50304) and micro-batch (8 × 1024): 124,475,904 parameters of
        // which 123,568,128 are GEMM weights; 30,832 bytes per token and layer, 125,204 per token once.
        ResolvedSpec spec =
                Specs.resolved("\"model\": {\"preset\": \"gpt2-small\"}, \"sparsity\": {\"mode\": \"dense\"}");

        GpuMemoryEstimate e = GpuMemoryEstimate.training(spec, 50304);

        assertEquals(4L * 124_475_904, e.masterBytes());
        assertEquals(2L * 123_568_128, e.operandBytes());
        assertEquals(8192L * (12 * 30_832 + 125_204), e.activationBytes());
        // 4.3% under the 6.61 GB an H100 measured for this training step with the same attention kernels
        // (bench/results/2026-12-06-h100/run2-attention).
        long step = e.masterBytes() + e.gradientBytes() + e.optimizerBytes() + e.operandBytes() + e.activationBytes()
                + 32 * MIB;
        assertEquals(6_329_000_000L, step, 1_000_000);
    }

    @Test
    void sparseNoDoublePruneKeepsItsBackwardOperandDense() {
        GpuMemoryEstimate slope = GpuMemoryEstimate.training(Specs.resolved(""), CHAR_VOCAB);
        GpuMemoryEstimate exact = GpuMemoryEstimate.training(
                Specs.resolved("\"sparsity\": {\"mode\": \"sparse-no-double-prune\"}"), CHAR_VOCAB);

        long sparse = 86_016;
        assertEquals(slope.operandBytes() + sparse * 2 - sparse * 9 / 4, exact.operandBytes());
    }

    @Test
    void layersTheTwoFourTensorCoresCannotRunGetMaskedDenseOperands() {
        // dModel 48 is not a multiple of 32, so neither operand is compressed: bf16 W^R and its masked transpose.
        ResolvedSpec spec = Specs.resolved("\"model\": {\"dModel\": 48, \"heads\": 4}");
        long sparse = 2 * 12 * 48 * 48 - 3 * 48 * 48;
        long denseGemmWeights = CHAR_VOCAB * 48 + 3 * 48 * 48; // wte, block 0's qkv
        long adapters = 2 * 4 * 16 * 48 - 4 * 4 * 48;

        assertEquals(2 * (denseGemmWeights + adapters) + sparse * 5 / 8 + 4 * sparse,
                GpuMemoryEstimate.training(spec, CHAR_VOCAB).operandBytes());
    }

    @Test
    void onlyTheActivationsGrowWithTheBatchSize() {
        GpuMemoryEstimate one = GpuMemoryEstimate.training(Specs.resolved("\"training\": {\"batchSize\": 1}"),
                CHAR_VOCAB);
        GpuMemoryEstimate four = GpuMemoryEstimate.training(Specs.resolved("\"training\": {\"batchSize\": 4}"),
                CHAR_VOCAB);

        assertEquals(4 * one.activationBytes(), four.activationBytes());
        assertEquals(one.masterBytes() + one.operandBytes(), four.masterBytes() + four.operandBytes());
        assertTrue(four.evaluationBytes() > one.evaluationBytes());
    }

    @Test
    void anAbsurdShapeIsCountedWithoutWrappingAndRefused() {
        // Past the spec's bounds (so not validated): 16 billion tokens a micro-batch, about 350 TB.
        ResolvedSpec tiny = Specs.resolved("");
        ResolvedSpec spec = tiny.withModel(new ResolvedSpec.Model(Preset.TINY, tiny.model().layers(),
                tiny.model().heads(), tiny.model().dModel(), 2_000_000_000));

        assertTrue(GpuMemoryEstimate.training(spec, CHAR_VOCAB).totalBytes() > 300_000 * GB);
        assertTrue(RunSpecs.validateForGpu(spec, CHAR_VOCAB, 80 * GB).isPresent());
    }

    @Test
    void toStringGivesEachPartInGib() {
        long gib = 1L << 30;
        GpuMemoryEstimate e = new GpuMemoryEstimate(gib, gib, 2 * gib, gib / 4, 3 * gib, 5 * gib, gib / 16);

        assertEquals("~12.31 GiB (weights 1.00, grads 1.00, optimizer 2.00, operands 0.25, activations 3.00, "
                + "fp32 evaluation copy 5.00, workspaces 0.06)", e.toString());
    }

    @Test
    void gpt2SmallFitsAnEightyGigabyteGpu() {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"gpt2-small\"}, \"backend\": \"cuda\"");

        assertEquals(Optional.empty(), RunSpecs.validateForGpu(spec, RunSpecs.GPT2_VOCAB_SIZE, 80 * GB));
    }

    @Test
    void tooLargeABatchIsRefusedOnTheBatchSizeNamingTheLargestThatFits() {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"gpt2-xl\"}, \"training\": {\"batchSize\": 8}");

        SpecError error = RunSpecs.validateForGpu(spec, RunSpecs.GPT2_VOCAB_SIZE, 80 * GB).orElseThrow();

        assertEquals("training.batchSize", error.field());
        assertEquals("training on the GPU needs " + GpuMemoryEstimate.training(spec, RunSpecs.GPT2_VOCAB_SIZE)
                + " at its peak, the final evaluation, but the GPUs have 74.51 GiB; lower training.batchSize to 4 "
                + "(the largest that fits; raise training.gradAccum to keep the tokens per step) or model.seqLen",
                error.message());
        ResolvedSpec four = Specs.resolved("\"model\": {\"preset\": \"gpt2-xl\"}, \"training\": {\"batchSize\": 4}");
        ResolvedSpec five = Specs.resolved("\"model\": {\"preset\": \"gpt2-xl\"}, \"training\": {\"batchSize\": 5}");
        assertEquals(Optional.empty(), RunSpecs.validateForGpu(four, RunSpecs.GPT2_VOCAB_SIZE, 80 * GB));
        assertTrue(RunSpecs.validateForGpu(five, RunSpecs.GPT2_VOCAB_SIZE, 80 * GB).isPresent());
    }

    @Test
    void aModelTooLargeAtAnyBatchIsRefusedOnThePresetNamingThoseThatFit() {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"gpt2-large\"}, \"training\": {\"batchSize\": 1}");

        SpecError error = RunSpecs.validateForGpu(spec, RunSpecs.GPT2_VOCAB_SIZE, 16 * GB).orElseThrow();

        assertEquals("model.preset", error.field());
        assertTrue(error.message().endsWith("; even training.batchSize=1 does not fit: pick a smaller preset (tiny, "
                + "mini, char-small, gpt2-small, gpt2-medium)"), error.message());
    }

    @Test
    void beforeTheCorpusIsReadGpt2HasItsVocabularyAndCharAnAssumedOne() {
        assertEquals(50_257, RunSpecs.vocabularyBeforeData(RunSpecCodec.parseResolved(
                "{\"data\": {\"corpus\": [\"a.txt\"], \"tokenizer\": \"gpt2\"}}")));
        assertEquals(RunSpecs.CHAR_VOCAB_ASSUMED, RunSpecs.vocabularyBeforeData(Specs.resolved("")));
    }
}
