package io.slope.engine.cpu;

import static io.slope.engine.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.rng.Philox;
import io.slope.engine.sparse.NmPattern;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every layer operation's backward against central finite differences of its forward, in fp64, one operation at a
 * time (so a failure names the kernel, unlike the whole-model check in GptModelGradientTest).
 *
 * <p>Each op's output is reduced by a fixed random projection, L = Σ out ⊙ R; its backward with dout = R must then
 * equal ∂L/∂input. Inputs are random normals from Philox: nonzero, distinct, and away from any tie (N:M masks, max).
 * Every analytic gradient is taken twice to check the backend conventions: parameter gradients are added into, input
 * gradients of layers (and attention's dqkv) overwritten (ADR 043).
 */
class CpuBackendGradientTest {
    private static final int B = 2;
    private static final int T = 5;
    private static final int C = 8;
    private static final int HEADS = 2;
    private static final int V = 7;
    private static final int ROWS = B * T;
    private static final int D_OUT = 12;
    private static final double H = 1e-5;
    private static final double TOLERANCE = 1e-6;
    private static final long SEED = 20240611;

    private CpuBackend backend;

    @BeforeEach
    void start() {
        // One thread: the reference ordering; the kernels are deterministic in thread count anyway.
        backend = new CpuBackend(1);
    }

    @AfterEach
    void stop() {
        backend.close();
    }

    @Test
    void embeddingBackwardMatchesFiniteDifferences() {
        Tensor wte = tensor("embedding.wte", 1.0, V, C);
        // More position rows than T: rows past T are never read and must get zero gradient.
        Tensor wpe = tensor("embedding.wpe", 1.0, T + 2, C);
        Tensor tokens = backend.zeros(DType.I32, B, T);
        // 10 tokens over 7 ids: repeats are certain, so the scatter-add into wte is exercised; id 6 never occurs.
        backend.uploadInts(tokens, new int[] {3, 0, 3, 5, 1, 2, 4, 0, 3, 1});
        Tensor out = backend.zeros(DType.F64, ROWS, C);
        double[] r = random("embedding.R", ROWS * C, 1.0);
        DoubleSupplier objective = () -> {
            backend.embeddingForward(out, tokens, wte, wpe, B, T);
            return project(out, r);
        };

        objective.getAsDouble();
        Tensor dwte = backend.zeros(DType.F64, V, C);
        Tensor dwpe = backend.zeros(DType.F64, T + 2, C);
        Tensor dout = upload(r, ROWS, C);
        double[][] analytic = analyticGradients("embeddingBackward",
                () -> backend.embeddingBackward(dwte, dwpe, dout, tokens, B, T), List.of(), dwte, dwpe);

        assertGradient("dwte", analytic[0], numericGradient(wte, objective));
        assertGradient("dwpe", analytic[1], numericGradient(wpe, objective));
    }

    @Test
    void layerNormBackwardMatchesFiniteDifferences() {
        Tensor inp = tensor("layerNorm.inp", 2.0, ROWS, C);
        Tensor weight = upload(shifted(random("layerNorm.weight", C, 0.5), 1.0), C);
        Tensor bias = tensor("layerNorm.bias", 0.5, C);
        Tensor out = backend.zeros(DType.F64, ROWS, C);
        Tensor mean = backend.zeros(DType.F64, ROWS);
        Tensor rstd = backend.zeros(DType.F64, ROWS);
        double[] r = random("layerNorm.R", ROWS * C, 1.0);
        DoubleSupplier objective = () -> {
            backend.layerNormForward(out, mean, rstd, inp, weight, bias);
            return project(out, r);
        };

        // Backward reads the mean and rstd this forward saved for the unperturbed input.
        objective.getAsDouble();
        Tensor dinp = backend.zeros(DType.F64, ROWS, C);
        Tensor dweight = backend.zeros(DType.F64, C);
        Tensor dbias = backend.zeros(DType.F64, C);
        Tensor dout = upload(r, ROWS, C);
        double[][] analytic = analyticGradients("layerNormBackward",
                () -> backend.layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd), List.of(),
                dinp, dweight, dbias);

        assertGradient("dinp", analytic[0], numericGradient(inp, objective));
        assertGradient("dweight", analytic[1], numericGradient(weight, objective));
        assertGradient("dbias", analytic[2], numericGradient(bias, objective));
    }

    @ParameterizedTest(name = "withBias={0}")
    @ValueSource(booleans = {true, false})
    void matmulBackwardMatchesFiniteDifferences(boolean withBias) {
        Tensor inp = tensor("matmul.inp", 1.0, ROWS, C);
        Tensor weight = tensor("matmul.weight", 1.0, D_OUT, C);
        Tensor bias = withBias ? tensor("matmul.bias", 1.0, D_OUT) : null;
        Tensor out = backend.zeros(DType.F64, ROWS, D_OUT);
        double[] r = random("matmul.R", ROWS * D_OUT, 1.0);
        DoubleSupplier objective = () -> {
            backend.matmulForward(out, inp, weight, bias);
            return project(out, r);
        };

        objective.getAsDouble();
        Tensor dinp = backend.zeros(DType.F64, ROWS, C);
        Tensor dweight = backend.zeros(DType.F64, D_OUT, C);
        Tensor dbias = withBias ? backend.zeros(DType.F64, D_OUT) : null;
        Tensor dout = upload(r, ROWS, D_OUT);
        Runnable backward = () -> backend.matmulBackward(dinp, dweight, dbias, dout, inp, weight);
        double[][] analytic = withBias
                ? analyticGradients("matmulBackward", backward, List.of(dinp), dweight, dbias)
                : analyticGradients("matmulBackward", backward, List.of(dinp), dweight);

        assertGradient("dinp", analytic[0], numericGradient(inp, objective));
        assertGradient("dweight", analytic[1], numericGradient(weight, objective));
        if (withBias) {
            assertGradient("dbias", analytic[2], numericGradient(bias, objective));
        }
    }

    @ParameterizedTest(name = "withBias={0}")
    @ValueSource(booleans = {true, false})
    void sparseMatmulBackwardMatchesFiniteDifferences(boolean withBias) {
        NmPattern pattern = NmPattern.twoFour();
        // Without double pruning the backward is the exact gradient of the row-masked layer.
        SparseLinear w = backend.sparseLinear(random("sparse.dense", D_OUT * C, 1.0), D_OUT, C, pattern, false,
                DType.F64);
        int k = w.keptPerRow();
        assertEquals(C / 2, k, "2:4 keeps half of each row");
        Tensor inp = tensor("sparse.inp", 1.0, ROWS, C);
        Tensor bias = withBias ? tensor("sparse.bias", 1.0, D_OUT) : null;
        Tensor out = backend.zeros(DType.F64, ROWS, D_OUT);
        double[] r = random("sparse.R", ROWS * D_OUT, 1.0);
        DoubleSupplier objective = () -> {
            backend.sparseMatmulForward(out, inp, w, bias);
            return project(out, r);
        };

        objective.getAsDouble();
        Tensor dinp = backend.zeros(DType.F64, ROWS, C);
        Tensor dvalues = backend.zeros(DType.F64, D_OUT, k);
        Tensor dbias = withBias ? backend.zeros(DType.F64, D_OUT) : null;
        Tensor dout = upload(r, ROWS, D_OUT);
        Runnable backward = () -> backend.sparseMatmulBackward(dinp, dvalues, dbias, dout, inp, w);
        double[][] analytic = withBias
                ? analyticGradients("sparseMatmulBackward", backward, List.of(dinp), dvalues, dbias)
                : analyticGradients("sparseMatmulBackward", backward, List.of(dinp), dvalues);

        assertGradient("dinp", analytic[0], numericGradient(inp, objective));
        // The operands are derived from the kept values: a perturbed value only reaches the forward once rebuilt.
        double[] values = backend.download(w.values());
        assertGradient("dvalues", analytic[1], numericGradient(values, v -> {
            backend.upload(w.values(), v);
            backend.updateSparseOperands(w, false);
        }, objective));
        if (withBias) {
            assertGradient("dbias", analytic[2], numericGradient(bias, objective));
        }
    }

    @Test
    void attentionBackwardMatchesFiniteDifferences() {
        // Unit-normal q and k give scores of order 1 after the 1/√(C/NH) scale: a softmax far from one-hot.
        Tensor qkv = tensor("attention.qkv", 1.0, ROWS, 3 * C);
        Tensor out = backend.zeros(DType.F64, ROWS, C);
        Tensor state = backend.attentionState(B, T, HEADS);
        double[] r = random("attention.R", ROWS * C, 1.0);
        DoubleSupplier objective = () -> {
            backend.attentionForward(out, state, qkv, B, T, HEADS);
            return project(out, r);
        };

        // Backward reads the probabilities this forward saved for the unperturbed qkv.
        objective.getAsDouble();
        Tensor dqkv = backend.zeros(DType.F64, ROWS, 3 * C);
        Tensor dout = upload(r, ROWS, C);
        double[][] analytic = analyticGradients("attentionBackward",
                () -> backend.attentionBackward(dqkv, dout, qkv, out, state, B, T, HEADS), List.of(dqkv));

        // Covers q, k and v, and causality: a key or value after position t has zero influence on out[t].
        assertGradient("dqkv", analytic[0], numericGradient(qkv, objective));
    }

    @Test
    void geluBackwardMatchesFiniteDifferences() {
        // Spread ±2σ over the curved part of tanh and both tails.
        Tensor inp = tensor("gelu.inp", 2.0, ROWS, C);
        Tensor out = backend.zeros(DType.F64, ROWS, C);
        double[] r = random("gelu.R", ROWS * C, 1.0);
        DoubleSupplier objective = () -> {
            backend.geluForward(out, inp);
            return project(out, r);
        };

        objective.getAsDouble();
        Tensor dinp = backend.zeros(DType.F64, ROWS, C);
        Tensor dout = upload(r, ROWS, C);
        double[][] analytic = analyticGradients("geluBackward", () -> backend.geluBackward(dinp, inp, dout),
                List.of(dinp));

        assertGradient("dinp", analytic[0], numericGradient(inp, objective));
    }

    @Test
    void residualGradientIsDoutForBothInputs() {
        // There is no residual backward: callers route dout to both branches, so ∂L/∂a = ∂L/∂b = R must hold.
        Tensor a = tensor("residual.a", 1.0, ROWS, C);
        Tensor b = tensor("residual.b", 1.0, ROWS, C);
        Tensor out = backend.zeros(DType.F64, ROWS, C);
        double[] r = random("residual.R", ROWS * C, 1.0);
        DoubleSupplier objective = () -> {
            backend.residualForward(out, a, b);
            return project(out, r);
        };

        assertGradient("da", r, numericGradient(a, objective));
        assertGradient("db", r, numericGradient(b, objective));
    }

    @Test
    void crossEntropyGradientMatchesFiniteDifferencesOfScaledLossSum() {
        Tensor logits = tensor("crossEntropy.logits", 2.0, ROWS, V);
        Tensor targets = backend.zeros(DType.I32, ROWS);
        int[] tgt = new int[ROWS];
        for (int i = 0; i < ROWS; i++) {
            tgt[i] = (int) Philox.uniformLong(SEED, Philox.stream("crossEntropy.targets"), i, V);
        }
        backend.uploadInts(targets, tgt);
        Tensor losses = backend.zeros(DType.F64, ROWS);
        // Not 1/rows: a scale that is neither 1 nor the usual mean catches a hard-coded normalisation.
        double gradScale = 0.37;
        DoubleSupplier objective = () -> {
            backend.crossEntropyForwardBackward(losses, null, logits, targets, gradScale);
            double sum = 0;
            for (double l : backend.download(losses)) {
                sum += l;
            }
            return sum * gradScale;
        };

        // dlogits is overwritten, not accumulated: start it from garbage.
        Tensor dlogits = tensor("crossEntropy.garbage", 5.0, ROWS, V);
        backend.crossEntropyForwardBackward(losses, dlogits, logits, targets, gradScale);
        double[] analytic = backend.download(dlogits);

        assertGradient("dlogits", analytic, numericGradient(logits, objective));
    }

    @Test
    void crossEntropyLossIsMinusLogSoftmaxOfTargetAndMayOverwriteLogits() {
        double[] z = random("crossEntropy.logits", ROWS * V, 2.0);
        Tensor logits = upload(z, ROWS, V);
        int[] tgt = new int[ROWS];
        for (int i = 0; i < ROWS; i++) {
            tgt[i] = i % V;
        }
        Tensor targets = backend.zeros(DType.I32, ROWS);
        backend.uploadInts(targets, tgt);
        Tensor losses = backend.zeros(DType.F64, ROWS);
        Tensor dlogits = backend.zeros(DType.F64, ROWS, V);
        backend.crossEntropyForwardBackward(losses, dlogits, logits, targets, 1.0);

        // Finite differences cannot see a constant offset in the loss: check its value directly.
        double[] loss = backend.download(losses);
        for (int row = 0; row < ROWS; row++) {
            double sumExp = 0;
            for (int v = 0; v < V; v++) {
                sumExp += Math.exp(z[row * V + v]);
            }
            assertEquals(Math.log(sumExp) - z[row * V + tgt[row]], loss[row], 1e-12, "loss of row " + row);
        }
        // The documented in-place use (dlogits = logits, as the model does to save memory) gives the same gradient.
        double[] separate = backend.download(dlogits);
        backend.crossEntropyForwardBackward(losses, logits, logits, targets, 1.0);
        assertArrayEquals(separate, backend.download(logits), 0.0);
        assertArrayEquals(loss, backend.download(losses), 0.0);
    }

    @Test
    void backwardAddsIntoExistingParameterGradientsAndOverwritesTheInputGradient() {
        // The conventions micro-batches and adapters rely on, beyond the doubling checked in every test above: a
        // nonzero parameter gradient already present is kept and the new contribution added to it; what dinp held is
        // gone (ADR 043: an adapter's input gradient is added after the layer's own).
        Tensor inp = tensor("adds.inp", 1.0, ROWS, C);
        Tensor weight = tensor("adds.weight", 1.0, D_OUT, C);
        Tensor dout = tensor("adds.dout", 1.0, ROWS, D_OUT);
        Tensor dinp = backend.zeros(DType.F64, ROWS, C);
        Tensor dweight = backend.zeros(DType.F64, D_OUT, C);
        Tensor dbias = backend.zeros(DType.F64, D_OUT);
        backend.matmulBackward(dinp, dweight, dbias, dout, inp, weight);
        double[][] fresh = {backend.download(dinp), backend.download(dweight), backend.download(dbias)};

        Tensor[] grads = {dinp, dweight, dbias};
        double[][] existing = new double[3][];
        for (int g = 0; g < 3; g++) {
            existing[g] = random("adds.existing" + g, fresh[g].length, 1.0);
            backend.upload(grads[g], existing[g]);
        }
        backend.matmulBackward(dinp, dweight, dbias, dout, inp, weight);
        assertArrayEquals(fresh[0], backend.download(dinp), 0.0, "dinp = new");
        String[] names = {"dinp", "dweight", "dbias"};
        for (int g = 1; g < 3; g++) {
            double[] expected = new double[fresh[g].length];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = existing[g][i] + fresh[g][i];
            }
            assertTrue(relativeError(backend.download(grads[g]), expected) < 1e-15, names[g] + " = existing + new");
        }
    }

    @Test
    void f32AndBf16StorageRoundOutputsToTheirPrecision() {
        double[] x = random("storage.inp", ROWS * C, 1.0);
        double[] w = random("storage.weight", D_OUT * C, 1.0);
        double[] bias = random("storage.bias", D_OUT, 1.0);
        Tensor inp = upload(x, ROWS, C);
        Tensor weight = upload(w, D_OUT, C);
        Tensor b = upload(bias, D_OUT);
        Tensor exactOut = backend.zeros(DType.F64, ROWS, D_OUT);
        backend.matmulForward(exactOut, inp, weight, b);
        double[] exact = backend.download(exactOut);
        int offGrid = 0;
        for (double v : exact) {
            offGrid += (double) (float) v != v ? 1 : 0;
        }
        // Otherwise the float checks below would pass without any rounding taking place.
        assertTrue(offGrid > exact.length / 2, "fp64 results are mostly not floats");

        Tensor f32 = backend.zeros(DType.F32, ROWS, D_OUT);
        backend.matmulForward(f32, inp, weight, b);
        double[] single = backend.download(f32);
        for (int i = 0; i < single.length; i++) {
            assertEquals((double) (float) single[i], single[i], 0.0, "F32 element " + i + " is a float");
        }
        double f32Error = relativeError(single, exact);
        assertTrue(f32Error < 1e-6, "F32 normwise error " + f32Error);
        assertTrue(f32Error > 0, "F32 rounding changed something");

        Tensor bf16 = backend.zeros(DType.BF16, ROWS, D_OUT);
        backend.matmulForward(bf16, inp, weight, b);
        double[] half = backend.download(bf16);
        for (int i = 0; i < half.length; i++) {
            float f = (float) half[i];
            assertEquals((double) f, half[i], 0.0, "BF16 element " + i + " is a float");
            assertEquals(0, Float.floatToRawIntBits(f) & 0xFFFF, "BF16 element " + i + " has 8 mantissa bits");
            // Round to nearest: within half a bfloat16 ulp, 2^-9 relative to the leading power of two ≤ 2^-8·|x|.
            assertTrue(Math.abs(half[i] - exact[i]) <= 0x1.0p-8 * Math.abs(exact[i]),
                    "BF16 element " + i + ": " + half[i] + " for " + exact[i]);
        }

        // upload rounds as well (Backend.upload's contract): the host sees what the device would hold.
        Tensor uploaded = backend.zeros(DType.BF16, ROWS, D_OUT);
        backend.upload(uploaded, exact);
        assertArrayEquals(half, backend.download(uploaded), 0.0);
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    /**
     * Runs {@code backward} with the overwritten gradients holding stale values and the added-into ones zeroed, and
     * returns what it wrote (overwritten first, in order); then runs it again and checks each overwritten gradient
     * unchanged and each added-into one doubled (exact up to the order of additions).
     */
    private double[][] analyticGradients(String op, Runnable backward, List<Tensor> overwritten,
            Tensor... addedInto) {
        for (Tensor g : overwritten) {
            backend.upload(g, random(op + ".stale", Math.toIntExact(g.size()), 1.0));
        }
        for (Tensor g : addedInto) {
            backend.zero(g);
        }
        List<Tensor> grads = new ArrayList<>(overwritten);
        grads.addAll(List.of(addedInto));
        backward.run();
        double[][] once = new double[grads.size()][];
        for (int i = 0; i < grads.size(); i++) {
            once[i] = backend.download(grads.get(i));
        }
        backward.run();
        for (int i = 0; i < grads.size(); i++) {
            double[] doubled = once[i].clone();
            if (i >= overwritten.size()) {
                for (int j = 0; j < doubled.length; j++) {
                    doubled[j] *= 2;
                }
            }
            double err = relativeError(backend.download(grads.get(i)), doubled);
            assertTrue(i < overwritten.size() ? err == 0 : err < 1e-14, op + (i < overwritten.size()
                    ? " must overwrite gradient " : " must add into gradient ") + i + " (" + err + ")");
        }
        return once;
    }

    private double[] numericGradient(Tensor input, DoubleSupplier objective) {
        return numericGradient(backend.download(input), v -> backend.upload(input, v), objective);
    }

    /** Central differences of {@code objective} in each element of {@code x}, set through {@code set}; restores x. */
    private static double[] numericGradient(double[] x, Consumer<double[]> set, DoubleSupplier objective) {
        double[] probe = x.clone();
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            probe[i] = x[i] + H;
            set.accept(probe);
            double plus = objective.getAsDouble();
            probe[i] = x[i] - H;
            set.accept(probe);
            double minus = objective.getAsDouble();
            probe[i] = x[i];
            g[i] = (plus - minus) / (2 * H);
        }
        set.accept(x);
        return g;
    }

    private static void assertGradient(String what, double[] analytic, double[] numeric) {
        assertEquals(numeric.length, analytic.length, what + " length");
        // A vanishing reference would make the relative error meaningless (and the check vacuous).
        assertTrue(norm(numeric) > 1e-3, what + ": numeric gradient is ~0");
        double err = relativeError(analytic, numeric);
        assertTrue(err < TOLERANCE, what + ": normwise relative error " + err);
    }

    /** Σ out ⊙ r. */
    private double project(Tensor out, double[] r) {
        double[] y = backend.download(out);
        double s = 0;
        for (int i = 0; i < y.length; i++) {
            s += y[i] * r[i];
        }
        return s;
    }

    private Tensor tensor(String name, double scale, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return upload(random(name, n, scale), shape);
    }

    private Tensor upload(double[] values, int... shape) {
        Tensor t = backend.zeros(DType.F64, shape);
        backend.upload(t, values);
        return t;
    }

    /** Normal(0, scale²) values from the Philox stream named for their use: reproducible and independent. */
    private static double[] random(String name, int n, double scale) {
        long stream = Philox.stream(name);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * Philox.normal(SEED, stream, i);
        }
        return v;
    }

    private static double[] shifted(double[] v, double by) {
        double[] s = v.clone();
        for (int i = 0; i < s.length; i++) {
            s[i] += by;
        }
        return s;
    }

    private static double norm(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x * x;
        }
        return Math.sqrt(s);
    }

}
