package io.slope.cuda;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.cuda.GpuParity.Pair;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.sparse.NmPattern;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A decoding step's 2:4 forwards on two_four_few_rows_forward (1 to 16 rows; CudaBackend.fewRowsForward): against the
 * CPU, alone (sparseMatmulForward) and with an adapter (sparseLowRankForward, A 2:4 along d_in as the inference form
 * has it, and A dense; and with the GELU after them), with and without bias, at GPT-2 XL's fc shapes both ways, GPT-2
 * small's qkv and two small ones (d_in 96: a last chunk of 64 inputs only half inside), also after new values. Then
 * against cuSPARSELt's padded path (SLOPE_SPARSE_DECODE=0), and two runs bit for bit. Bound: the bf16 parity bound
 * (GpuParity).
 */
class SparseDecodeParityTest {
    private static final int[] ROWS = {1, 3, 8, 16};
    private static final int RANK = 24;

    @ParameterizedTest
    @CsvSource({"1600, 6400, true", "1600, 6400, false", "6400, 1600, true", "6400, 1600, false", "768, 2304, true",
        "768, 2304, false", "64, 96, true", "64, 96, false", "96, 160, true", "96, 160, false"})
    void fewRowsMatchTheCpu(int dIn, int dOut, boolean withBias) {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        onFewRowsKernel(t.gpu, true, () -> {
            GpuParity.Two<SparseLinear> w = CudaParityTest.sparseLayer(t, dOut, dIn, NmPattern.twoFour(), false);
            Pair prunedA = t.pair(DType.F32, dIn, RANK);
            t.set(prunedA, CudaParityTest.prunedAdapter(t, dIn, RANK));
            Pair denseA = t.gemmOperand(DType.F32, 1, dIn, RANK);
            Pair b = t.gemmOperand(DType.F32, 0.1, RANK, dOut);
            t.both(s -> {
                s.backend().declareWeight(s.of(prunedA));
                s.backend().declareWeight(s.of(b));
            });
            Pair bias = withBias ? t.input(DType.F32, 0.1, dOut) : null;
            String shape = dIn + "→" + dOut + (withBias ? "" : ", no bias");
            for (int rows : ROWS) {
                Pair inp = t.gemmOperand(DType.BF16, 1, rows, dIn);
                Pair out = t.output(DType.BF16, rows, dOut);
                t.both(s -> s.backend().sparseMatmulForward(s.of(out), s.of(inp), s.of(w),
                        bias == null ? null : s.of(bias)));
                t.check("few-rows 2:4 forward " + shape + ", " + rows + " rows", out);
                for (Pair a : new Pair[] {prunedA, denseA}) {
                    Pair lowRank = t.output(DType.BF16, rows, dOut);
                    t.both(s -> s.backend().sparseLowRankForward(s.of(lowRank), s.of(inp), s.of(w), s.of(a),
                            s.of(b), bias == null ? null : s.of(bias)));
                    t.check("few-rows low-rank " + shape + ", A " + (a == prunedA ? "2:4" : "dense") + ", " + rows
                            + " rows", lowRank);
                }
                // An adapted fc layer in a forward with no backward: its GELU in the accumulate pass.
                if (rows >= CudaParityTest.GELU_CHECK_MIN_ROWS) {
                    Pair lowRankGelu = t.output(DType.BF16, rows, dOut);
                    t.both(s -> s.backend().sparseLowRankGeluForward(s.of(lowRankGelu), s.of(inp), s.of(w),
                            s.of(prunedA), s.of(b), bias == null ? null : s.of(bias)));
                    t.check("few-rows low-rank + GELU " + shape + ", " + rows + " rows", lowRankGelu);
                }
            }
            assertNotNull(((CudaSparseLinear) w.gpu()).decodeIndex, "the forwards ran on the few-rows kernel");
            // New kept values, as an optimizer step leaves them: the kernel reads the values' current bf16 copy.
            double[] values = t.randomValues(dOut * w.gpu().keptPerRow(), 0.1);
            CudaParityTest.roundToGemmPrecision(t, values);
            t.both(s -> s.backend().upload(s.of(w).values(), values));
            t.both(s -> s.backend().updateSparseOperands(s.of(w), false));
            Pair inp = t.gemmOperand(DType.BF16, 1, 3, dIn);
            Pair out = t.output(DType.BF16, 3, dOut);
            t.both(s -> s.backend().sparseMatmulForward(s.of(out), s.of(inp), s.of(w), bias == null ? null
                    : s.of(bias)));
            t.check("few-rows 2:4 forward " + shape + ", 3 rows, after an upload of W^R's values", out);
        });
    }

    /**
     * The few-rows kernel and cuSPARSELt's padded path give the same outputs within the bf16 bound, with and without
     * an adapter; each path twice gives the same bits.
     */
    @ParameterizedTest
    @CsvSource({"1600, 6400, 1", "1600, 6400, 16", "6400, 1600, 3", "768, 2304, 8", "96, 160, 16"})
    void fewRowsAgreeWithCuSparseLtAndRepeatThemselves(int dIn, int dOut, int rows) {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        CudaBackend gpu = t.gpu;
        SparseLinear w = gpu.sparseLinear(t.randomValues(dOut * dIn, 0.1), dOut, dIn, NmPattern.twoFour(), false,
                DType.F32);
        Pair a = t.pair(DType.F32, dIn, RANK);
        t.set(a, CudaParityTest.prunedAdapter(t, dIn, RANK));
        Pair b = t.input(DType.F32, 0.1, RANK, dOut);
        Pair bias = t.input(DType.F32, 0.1, dOut);
        Pair inp = t.input(DType.BF16, 1, rows, dIn);
        String what = dIn + "→" + dOut + ", " + rows + " rows";
        compare(gpu, "2:4 forward " + what, rows * dOut, out -> gpu.sparseMatmulForward(out.gpu(), inp.gpu(), w,
                bias.gpu()), t);
        compare(gpu, "low-rank forward " + what, rows * dOut, out -> gpu.sparseLowRankForward(out.gpu(), inp.gpu(),
                w, a.gpu(), b.gpu(), bias.gpu()), t);
    }

    /** One forward on each path, twice each: the few-rows outputs within the bf16 bound of the padded path's. */
    private static void compare(CudaBackend gpu, String what, int n, Consumer<Pair> forward, GpuParity t) {
        double[][] few = new double[2][];
        double[][] padded = new double[2][];
        for (int run = 0; run < 2; run++) {
            few[run] = run(gpu, true, forward, t, n);
            padded[run] = run(gpu, false, forward, t, n);
        }
        assertArrayEquals(few[0], few[1], what + ": the few-rows kernel twice, bit for bit; seed " + t.seed);
        assertArrayEquals(padded[0], padded[1], what + ": cuSPARSELt's padded path twice, bit for bit");
        double err = relativeError(few[0], padded[0]);
        assertTrue(err <= GpuParity.BF16_BOUND, what + ": few-rows kernel against cuSPARSELt's padded path, normwise"
                + " error " + err + " > " + GpuParity.BF16_BOUND + "; seed " + t.seed);
        System.out.printf("parity few-rows vs cuSPARSELt %-34s err %.3e (bound %.0e)%n", what, err,
                GpuParity.BF16_BOUND);
    }

    private static double[] run(CudaBackend gpu, boolean fewRows, Consumer<Pair> forward, GpuParity t, int n) {
        Pair out = t.output(DType.BF16, n);
        onFewRowsKernel(gpu, fewRows, () -> forward.accept(out));
        return gpu.download(out.gpu());
    }

    /** Runs {@code body} with the few-rows kernel on or off, then restores the backend's setting. */
    static void onFewRowsKernel(CudaBackend gpu, boolean on, Runnable body) {
        boolean before = gpu.decodesOnFewRowsKernel();
        gpu.decodeOnFewRowsKernel(on);
        try {
            body.run();
        } finally {
            gpu.decodeOnFewRowsKernel(before);
        }
    }
}
