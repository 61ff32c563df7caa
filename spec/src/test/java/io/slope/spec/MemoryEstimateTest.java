package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class MemoryEstimateTest {
    private static final long GIB = 1L << 30;
    private static final int CHAR_VOCAB = 65;
    private static final int GPT2_VOCAB = 50257;

    @Test
    void tinyWithA65TokenVocabularyHasTheHandCountedParameters() {
        // wte 65·64 = 4,160 + wpe 64·64 = 4,096 + 2 blocks · (12·64² + 13·64 = 49,984) + final LayerNorm 2·64 = 128
        ResolvedSpec.Model tiny = Specs.resolved("").model();
        assertEquals(108_352, MemoryEstimate.gpt2ParameterCount(tiny.layers(), tiny.dModel(), tiny.seqLen(),
                CHAR_VOCAB));
    }

    @Test
    void tinyBreakdownMatchesTheHandCount() {
        // Defaults: slope 2:4, block 0's qkv dense, adapters of rank 4 join at step 990 of 1000, batch 8.
        long sparseWeights = 2 * 12 * 64 * 64 - 3 * 64 * 64; // 86,016
        long adapters = 2 * 4 * 16 * 64 - 4 * 4 * 64; // r·(d_in + d_out) over the sparse layers: 7,168
        long trained = 108_352 - sparseWeights + sparseWeights / 2 + adapters; // 72,512
        long perLayer = 8 * 64 * 16 * 64 + 2 * 8 * 4 * 64 * 64; // 786,432
        long activations = 3 * perLayer + 2 * 8 * 64 * CHAR_VOCAB; // 2 layers + 1 layer of gradients + logits

        MemoryEstimate estimate = MemoryEstimate.cpuTraining(Specs.resolved(""), CHAR_VOCAB);

        assertEquals(new MemoryEstimate(108_352, 8 * (108_352 + adapters), 8 * 2 * sparseWeights, 8 * trained,
                8 * 2 * trained, 8 * activations), estimate);
        assertEquals(23_447_552, estimate.totalBytes());
    }

    @ParameterizedTest
    @EnumSource(Preset.class)
    void theBreakdownAddsUpToTheTotal(Preset preset) {
        MemoryEstimate e = MemoryEstimate.cpuTraining(
                Specs.resolved("\"model\": {\"preset\": \"" + preset.wireName() + "\"}"), GPT2_VOCAB);

        assertEquals(e.parameterBytes() + e.sparseCopyBytes() + e.gradientBytes() + e.optimizerBytes()
                + e.activationBytes(), e.totalBytes());
    }

    @Test
    void onlyActivationsGrowWithTheBatchSize() {
        MemoryEstimate one = MemoryEstimate.cpuTraining(Specs.resolved("\"training\": {\"batchSize\": 1}"), CHAR_VOCAB);
        MemoryEstimate four = MemoryEstimate.cpuTraining(Specs.resolved("\"training\": {\"batchSize\": 4}"), CHAR_VOCAB);

        assertEquals(4 * one.activationBytes(), four.activationBytes());
        assertEquals(new MemoryEstimate(one.parameterCount(), one.parameterBytes(), one.sparseCopyBytes(),
                one.gradientBytes(), one.optimizerBytes(), four.activationBytes()), four);
    }

    @Test
    void aDenseRunHasNoSparseCopiesNoAdaptersAndFullGradients() {
        MemoryEstimate e = MemoryEstimate.cpuTraining(Specs.resolved("\"sparsity\": {\"mode\": \"dense\"}"), CHAR_VOCAB);

        assertEquals(0, e.sparseCopyBytes());
        assertEquals(8 * e.parameterCount(), e.parameterBytes());
        assertEquals(e.parameterBytes(), e.gradientBytes());
        assertEquals(2 * e.gradientBytes(), e.optimizerBytes());
    }

    @Test
    void adaptersThatNeverJoinTakeNoMemory() {
        MemoryEstimate e = MemoryEstimate.cpuTraining(Specs.resolved("\"adapters\": {\"start\": 1}"), CHAR_VOCAB);

        assertEquals(8 * e.parameterCount(), e.parameterBytes());
    }

    @Test
    void anAbsurdShapeSaturatesInsteadOfOverflowing() {
        // Past the spec's bounds (so not validated): the estimate must still not wrap.
        ResolvedSpec tiny = Specs.resolved("");
        ResolvedSpec spec = tiny.withModel(new ResolvedSpec.Model(Preset.TINY, tiny.model().layers(),
                tiny.model().heads(), tiny.model().dModel(), 2_000_000_000));

        assertEquals(Long.MAX_VALUE, MemoryEstimate.cpuTraining(spec, CHAR_VOCAB).totalBytes());
        assertTrue(RunSpecs.validateForCpu(spec, CHAR_VOCAB, Long.MAX_VALUE - 1).isPresent());
    }

    @Test
    void toStringGivesGibWithTwoDecimals() {
        MemoryEstimate e = new MemoryEstimate(0, GIB, GIB / 2, GIB / 4, 3 * GIB, 10 * GIB + GIB / 100);

        assertEquals("~14.76 GiB (params 1.00, sparse copies 0.50, grads 0.25, optimizer 3.00, activations 10.01)",
                e.toString());
    }

    @Test
    void tinyFitsInOneGib() {
        assertEquals(Optional.empty(), RunSpecs.validateForCpu(Specs.resolved(""), CHAR_VOCAB, GIB));
    }

    @Test
    void gpt2XlWithTheGpt2VocabularyDoesNotFitIn24GibAndNamesThePresetsThatDo() {
        ResolvedSpec spec = Specs.resolved("\"model\": {\"preset\": \"gpt2-xl\"}, \"training\": {\"batchSize\": 8}");

        SpecError error = RunSpecs.validateForCpu(spec, GPT2_VOCAB, 24 * GIB).orElseThrow();

        assertEquals("model.preset", error.field());
        String need = MemoryEstimate.cpuTraining(spec, GPT2_VOCAB).toString();
        assertEquals("CPU training state needs " + need + " but this machine has 24.00 GiB; pick a smaller preset "
                + "(tiny, mini, char-small) or use backend \"cuda\"", error.message());
    }

    @Test
    void whenActivationsDominateTheErrorNamesTheLargestBatchSizeThatFits() {
        ResolvedSpec spec = gpt2SmallWithBatchSize(8);
        long available = 24 * GIB;

        SpecError error = RunSpecs.validateForCpu(spec, GPT2_VOCAB, available).orElseThrow();

        assertEquals("training.batchSize", error.field());
        assertTrue(error.message().contains("lower training.batchSize to 4 (the largest that fits;"), error.message());
        assertEquals(Optional.empty(), RunSpecs.validateForCpu(gpt2SmallWithBatchSize(4), GPT2_VOCAB, available));
        assertTrue(RunSpecs.validateForCpu(gpt2SmallWithBatchSize(5), GPT2_VOCAB, available).isPresent());
    }

    private static ResolvedSpec gpt2SmallWithBatchSize(int batchSize) {
        return Specs.resolved("\"model\": {\"preset\": \"gpt2-small\"}, \"training\": {\"batchSize\": " + batchSize
                + "}");
    }
}
