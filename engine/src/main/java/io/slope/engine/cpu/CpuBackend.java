package io.slope.engine.cpu;

import io.slope.engine.backend.AdamWStep;
import io.slope.engine.backend.AdamWUpdate;
import io.slope.engine.backend.Backend;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.backend.Tensor;
import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntUnaryOperator;

/**
 * The reference backend: every operation of {@link Backend} in plain Java, double arithmetic, outputs rounded to each
 * tensor's storage precision (ADR 001), parallel over output elements only (ADR 002).
 */
public final class CpuBackend implements Backend {
    private static final double LN_EPS = 1e-5;
    private static final double GELU_SCALE = StrictMath.sqrt(2.0 / StrictMath.PI);
    /** Rows handled together by the GEMM kernels so each weight row loaded is used several times. */
    private static final int ROW_BLOCK = 4;
    private static final int SUM_BLOCK = 8192;

    private final Parallel parallel;
    private final LongAdder attentionScores = new LongAdder();

    /** @param threads worker threads; 0 = all available processors */
    public CpuBackend(int threads) {
        this.parallel = new Parallel(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
    }

    @Override
    public String name() {
        return "cpu(" + parallel.threads() + " threads)";
    }

    public int threads() {
        return parallel.threads();
    }

    // ---- memory -------------------------------------------------------------------------------------------------

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        return new CpuTensor(dtype, shape);
    }

    @Override
    public void upload(Tensor dst, double[] src) {
        CpuTensor t = cpu(dst);
        requireLength(t, src.length, "upload");
        t.store(src, 0, 0, src.length);
    }

    @Override
    public void uploadInts(Tensor dst, int[] src) {
        CpuTensor t = cpu(dst);
        if (t.ints == null) {
            throw new IllegalArgumentException("uploadInts into a " + t.dtype + " tensor");
        }
        requireLength(t, src.length, "uploadInts");
        System.arraycopy(src, 0, t.ints, 0, src.length);
    }

    @Override
    public double[] download(Tensor src) {
        CpuTensor t = cpu(src);
        if (t.data == null) {
            throw new IllegalArgumentException("download of an I32 tensor; use downloadInts");
        }
        return t.data.clone();
    }

    @Override
    public int[] downloadInts(Tensor src) {
        CpuTensor t = cpu(src);
        if (t.ints == null) {
            throw new IllegalArgumentException("downloadInts of a " + t.dtype + " tensor");
        }
        return t.ints.clone();
    }

    @Override
    public void zero(Tensor t) {
        CpuTensor c = cpu(t);
        if (c.data != null) {
            Arrays.fill(c.data, 0.0);
        } else {
            Arrays.fill(c.ints, 0);
        }
    }

    // ---- N:M sparse weights ---------------------------------------------------------------------------------------

    @Override
    public SparseLinear sparseLinear(double[] denseWeight, int dOut, int dIn, NmPattern pattern, boolean doublePrune,
            DType dtype) {
        if (denseWeight.length != dOut * dIn) {
            throw new IllegalArgumentException("dense weight has " + denseWeight.length + " values, expected "
                    + dOut + "×" + dIn);
        }
        int[] rowKept = NmMasks.rowKeptIndices(denseWeight, dOut, dIn, pattern);
        int k = dIn / pattern.m() * pattern.n();
        double[] values = NmMasks.gatherKept(denseWeight, rowKept, dOut, dIn);
        CpuTensor v = new CpuTensor(dtype, new int[] {dOut, k});
        v.store(values, 0, 0, values.length);
        CpuSparseLinear w = new CpuSparseLinear(v, rowKept, new byte[dOut * dIn], dOut, dIn, pattern, doublePrune);
        if (!doublePrune) {
            markRowKept(w);
        }
        w.rebuildOperands(true);
        return w;
    }

    @Override
    public SparseLinear restoreSparseLinear(double[] values, int[] rowKeptIndices, byte[] columnMask, int dOut,
            int dIn, NmPattern pattern, boolean doublePrune, DType dtype) {
        int k = dIn / pattern.m() * pattern.n();
        if (values.length != dOut * k || rowKeptIndices.length != dOut * k) {
            throw new IllegalArgumentException("sparse layer " + dOut + "×" + dIn + " at " + pattern + " needs "
                    + dOut * k + " values and row-mask indices, got " + values.length + " and "
                    + rowKeptIndices.length);
        }
        CpuTensor v = new CpuTensor(dtype, new int[] {dOut, k});
        v.store(values, 0, 0, values.length);
        byte[] mask = new byte[dOut * dIn];
        if (doublePrune) {
            if (columnMask == null || columnMask.length != dOut * dIn) {
                throw new IllegalArgumentException("a double-pruned layer needs its " + dOut + "×" + dIn
                        + " column mask");
            }
            System.arraycopy(columnMask, 0, mask, 0, mask.length);
        }
        CpuSparseLinear w = new CpuSparseLinear(v, rowKeptIndices.clone(), mask, dOut, dIn, pattern, doublePrune);
        if (!doublePrune) {
            markRowKept(w);
        }
        w.rebuildOperands(false);
        return w;
    }

    private static void markRowKept(CpuSparseLinear w) {
        int k = w.keptPerRow();
        for (int o = 0; o < w.dOut(); o++) {
            for (int j = 0; j < k; j++) {
                w.columnMask[o * w.dIn() + w.rowKept[o * k + j]] = 1;
            }
        }
    }

    @Override
    public void updateSparseOperands(SparseLinear w, boolean refreshColumnMask) {
        sparse(w).rebuildOperands(refreshColumnMask);
    }

    @Override
    public int[] rowKeptIndices(SparseLinear w) {
        return sparse(w).rowKept.clone();
    }

    @Override
    public byte[] columnMask(SparseLinear w) {
        return sparse(w).columnMask.clone();
    }

    // ---- layers ---------------------------------------------------------------------------------------------------

    @Override
    public void embeddingForward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, int T) {
        embed(cpu(out), cpu(tokens), cpu(wte), cpu(wpe), B * T, r -> r % T);
    }

    @Override
    public void embeddingForwardAt(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int B, Tensor position) {
        int p = position(position, 1, wpe.shape()[0], "embeddingForwardAt");
        embed(cpu(out), cpu(tokens), cpu(wte), cpu(wpe), B, r -> p);
    }

    /** out[r,:] = wte[tokens[r],:] + wpe[positionOf(r),:] for rows r. */
    private void embed(CpuTensor o, CpuTensor tok, CpuTensor te, CpuTensor pe, int rows, IntUnaryOperator positionOf) {
        int C = te.shape[1];
        int V = te.shape[0];
        parallel.forRange(rows, C, (from, to) -> {
            double[] row = new double[C];
            for (int r = from; r < to; r++) {
                int id = tok.ints[r];
                if (id < 0 || id >= V) {
                    throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + V + ")");
                }
                int t = positionOf.applyAsInt(r);
                for (int c = 0; c < C; c++) {
                    row[c] = te.data[id * C + c] + pe.data[t * C + c];
                }
                o.store(row, 0, r * C, C);
            }
        });
    }

    @Override
    public void embeddingBackward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int B, int T) {
        CpuTensor dte = cpu(dwte);
        CpuTensor dpe = cpu(dwpe);
        CpuTensor d = cpu(dout);
        CpuTensor tok = cpu(tokens);
        int C = dte.shape[1];
        // Many rows scatter into one vocabulary row: each thread owns a channel range and walks all rows in order.
        parallel.forRange(C, (long) B * T, (from, to) -> {
            for (int r = 0; r < B * T; r++) {
                int id = tok.ints[r];
                int t = r % T;
                for (int c = from; c < to; c++) {
                    double g = d.data[r * C + c];
                    dte.data[id * C + c] = dte.round(dte.data[id * C + c] + g);
                    dpe.data[t * C + c] = dpe.round(dpe.data[t * C + c] + g);
                }
            }
        });
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias) {
        CpuTensor o = cpu(out);
        CpuTensor mu = cpu(mean);
        CpuTensor rs = cpu(rstd);
        CpuTensor x = cpu(inp);
        CpuTensor w = cpu(weight);
        CpuTensor b = cpu(bias);
        int C = w.length();
        int rows = x.length() / C;
        parallel.forRange(rows, 4L * C, (from, to) -> {
            double[] row = new double[C];
            for (int r = from; r < to; r++) {
                int off = r * C;
                double m = 0;
                for (int c = 0; c < C; c++) {
                    m += x.data[off + c];
                }
                m /= C;
                double var = 0;
                for (int c = 0; c < C; c++) {
                    double dx = x.data[off + c] - m;
                    var += dx * dx;
                }
                var /= C;
                double s = 1.0 / StrictMath.sqrt(var + LN_EPS);
                for (int c = 0; c < C; c++) {
                    row[c] = (x.data[off + c] - m) * s * w.data[c] + b.data[c];
                }
                o.store(row, 0, off, C);
                mu.data[r] = mu.round(m);
                rs.data[r] = rs.round(s);
            }
        });
    }

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
            Tensor mean, Tensor rstd) {
        CpuTensor dx = cpu(dinp);
        CpuTensor dw = cpu(dweight);
        CpuTensor db = cpu(dbias);
        CpuTensor dy = cpu(dout);
        CpuTensor x = cpu(inp);
        CpuTensor w = cpu(weight);
        CpuTensor mu = cpu(mean);
        CpuTensor rs = cpu(rstd);
        int C = w.length();
        int rows = x.length() / C;
        parallel.forRange(rows, 6L * C, (from, to) -> {
            double[] row = new double[C];
            for (int r = from; r < to; r++) {
                int off = r * C;
                double m = mu.data[r];
                double s = rs.data[r];
                double dnormMean = 0;
                double dnormNormMean = 0;
                for (int c = 0; c < C; c++) {
                    double norm = (x.data[off + c] - m) * s;
                    double dnorm = w.data[c] * dy.data[off + c];
                    dnormMean += dnorm;
                    dnormNormMean += dnorm * norm;
                }
                dnormMean /= C;
                dnormNormMean /= C;
                for (int c = 0; c < C; c++) {
                    double norm = (x.data[off + c] - m) * s;
                    double dnorm = w.data[c] * dy.data[off + c];
                    row[c] = dx.data[off + c] + (dnorm - dnormMean - norm * dnormNormMean) * s;
                }
                dx.store(row, 0, off, C);
            }
        });
        // Parameter gradients reduce over rows: one thread per channel range, rows in order.
        parallel.forRange(C, 2L * rows, (from, to) -> {
            for (int c = from; c < to; c++) {
                double gw = 0;
                double gb = 0;
                for (int r = 0; r < rows; r++) {
                    double g = dy.data[r * C + c];
                    gw += (x.data[r * C + c] - mu.data[r]) * rs.data[r] * g;
                    gb += g;
                }
                dw.data[c] = dw.round(dw.data[c] + gw);
                db.data[c] = db.round(db.data[c] + gb);
            }
        });
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        CpuTensor w = cpu(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        if (cpu(inp).length() / dIn < ROW_BLOCK) {
            fewRowsLinearForward(cpu(out), cpu(inp), w, bias == null ? null : cpu(bias), dIn, dOut);
            return;
        }
        linearForward(cpu(out), cpu(inp), transpose(w.data, dOut, dIn), bias == null ? null : cpu(bias), dIn, dOut);
    }

    /**
     * {@link #linearForward} for fewer rows than a row block (a decoding step): the weight is read row by row where it
     * lies instead of transposed per call (for the tied head, a copy of the whole vocabulary per token), parallel over
     * outputs. Each sum is the same as linearForward's: bias first, then i in increasing order.
     */
    private void fewRowsLinearForward(CpuTensor out, CpuTensor inp, CpuTensor w, CpuTensor bias, int dIn, int dOut) {
        int rows = inp.length() / dIn;
        requireLength(out, (long) rows * dOut, "linear output");
        parallel.forRange(dOut, (long) rows * dIn, (from, to) -> {
            double[] acc = new double[to - from];
            for (int r = 0; r < rows; r++) {
                for (int o = from; o < to; o++) {
                    double s = bias != null ? bias.data[o] : 0.0;
                    int wOff = o * dIn;
                    int xOff = r * dIn;
                    for (int i = 0; i < dIn; i++) {
                        s += inp.data[xOff + i] * w.data[wOff + i];
                    }
                    acc[o - from] = s;
                }
                out.store(acc, 0, r * dOut + from, to - from);
            }
        });
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight) {
        CpuTensor w = cpu(weight);
        int dOut = w.shape[0];
        int dIn = w.shape[1];
        CpuTensor dy = cpu(dout);
        int rows = dy.length() / dOut;
        double[] doutT = transpose(dy.data, rows, dOut);
        inputGradient(cpu(dinp), dy, w.data, rows, dIn, dOut);
        CpuTensor dw = cpu(dweight);
        weightGradient(doutT, cpu(inp), rows, dIn, dOut, (o, g) -> {
            int off = o * dIn;
            for (int i = 0; i < dIn; i++) {
                g[i] += dw.data[off + i];
            }
            dw.store(g, 0, off, dIn);
        });
        if (dbias != null) {
            biasGradient(cpu(dbias), doutT, rows, dOut);
        }
    }

    @Override
    public void sparseMatmulForward(Tensor out, Tensor inp, SparseLinear weight, Tensor bias) {
        CpuSparseLinear w = sparse(weight);
        linearForward(cpu(out), cpu(inp), w.forwardTransposed, bias == null ? null : cpu(bias), w.dIn(), w.dOut());
    }

    @Override
    public void sparseMatmulBackward(Tensor dinp, Tensor dvalues, Tensor dbias, Tensor dout, Tensor inp,
            SparseLinear weight) {
        CpuSparseLinear w = sparse(weight);
        int dOut = w.dOut();
        int dIn = w.dIn();
        int k = w.keptPerRow();
        CpuTensor dy = cpu(dout);
        int rows = dy.length() / dOut;
        double[] doutT = transpose(dy.data, rows, dOut);
        inputGradient(cpu(dinp), dy, w.backward, rows, dIn, dOut);
        CpuTensor dv = cpu(dvalues);
        // Dense dYᵀ·X, then only the row mask's kept positions are kept (docs/method.md: ∇W).
        weightGradient(doutT, cpu(inp), rows, dIn, dOut, (o, g) -> {
            double[] kept = new double[k];
            for (int j = 0; j < k; j++) {
                kept[j] = dv.data[o * k + j] + g[w.rowKept[o * k + j]];
            }
            dv.store(kept, 0, o * k, k);
        });
        if (dbias != null) {
            biasGradient(cpu(dbias), doutT, rows, dOut);
        }
    }

    @Override
    public void adapterForward(Tensor out, Tensor xa, Tensor inp, Tensor a, Tensor b, double scale) {
        CpuTensor aT = cpu(a);
        CpuTensor bT = cpu(b);
        int dIn = aT.shape[0];
        int r = aT.shape[1];
        int dOut = bT.shape[1];
        CpuTensor x = cpu(inp);
        int rows = x.length() / dIn;
        CpuTensor xaT = cpu(xa);
        xaT.store(product(x.data, aT.data, rows, dIn, r, 1.0), 0, 0, rows * r);
        CpuTensor y = cpu(out);
        addInto(y, product(xaT.data, bT.data, rows, r, dOut, scale));
    }

    /** The two operations it stands for, xa in a buffer of its own at the output's precision. */
    @Override
    public void sparseLowRankForward(Tensor out, Tensor inp, SparseLinear weight, Tensor a, Tensor b, Tensor bias) {
        sparseMatmulForward(out, inp, weight, bias);
        int r = cpu(a).shape[1];
        int rows = cpu(inp).length() / weight.dIn();
        adapterForward(out, new CpuTensor(out.dtype(), new int[] {rows, r}), inp, a, b, 1.0);
    }

    @Override
    public void adapterBackward(Tensor dinp, Tensor da, Tensor db, Tensor dxa, Tensor dout, Tensor inp, Tensor xa,
            Tensor a, Tensor b, double scale) {
        CpuTensor aT = cpu(a);
        CpuTensor bT = cpu(b);
        int dIn = aT.shape[0];
        int r = aT.shape[1];
        int dOut = bT.shape[1];
        CpuTensor dy = cpu(dout);
        int rows = dy.length() / dOut;
        CpuTensor xaT = cpu(xa);
        addInto(cpu(db), product(transpose(xaT.data, rows, r), dy.data, r, rows, dOut, scale));
        CpuTensor dxaT = cpu(dxa);
        dxaT.store(product(dy.data, transpose(bT.data, r, dOut), rows, dOut, r, scale), 0, 0, rows * r);
        addInto(cpu(da), product(transpose(cpu(inp).data, rows, dIn), dxaT.data, dIn, rows, r, 1.0));
        addInto(cpu(dinp), product(dxaT.data, transpose(aT.data, dIn, r), rows, r, dIn, 1.0));
    }

    /** scale·(x·y) for x {@code n × k} and y {@code k × m}, each element summed over k in increasing order. */
    private double[] product(double[] x, double[] y, int n, int k, int m, double scale) {
        double[] out = new double[n * m];
        parallel.forRange(n, (long) k * m, (from, to) -> {
            for (int i = from; i < to; i++) {
                int oOff = i * m;
                for (int j = 0; j < k; j++) {
                    double xv = x[i * k + j];
                    int yOff = j * m;
                    for (int c = 0; c < m; c++) {
                        out[oOff + c] += xv * y[yOff + c];
                    }
                }
                for (int c = 0; c < m; c++) {
                    out[oOff + c] *= scale;
                }
            }
        });
        return out;
    }

    private static void addInto(CpuTensor t, double[] delta) {
        requireLength(t, delta.length, "accumulated tensor");
        for (int i = 0; i < delta.length; i++) {
            t.data[i] = t.round(t.data[i] + delta[i]);
        }
    }

    /** out[r,:] = bias + Σ_i inp[r,i]·wT[i,:], i in increasing order for every element. */
    private void linearForward(CpuTensor out, CpuTensor inp, double[] wT, CpuTensor bias, int dIn, int dOut) {
        int rows = inp.length() / dIn;
        requireLength(out, (long) rows * dOut, "linear output");
        parallel.forRange(blocks(rows), (long) ROW_BLOCK * dIn * dOut, (fromBlock, toBlock) -> {
            double[] acc = new double[ROW_BLOCK * dOut];
            for (int blk = fromBlock; blk < toBlock; blk++) {
                int r0 = blk * ROW_BLOCK;
                int nr = Math.min(ROW_BLOCK, rows - r0);
                for (int q = 0; q < nr; q++) {
                    if (bias != null) {
                        System.arraycopy(bias.data, 0, acc, q * dOut, dOut);
                    } else {
                        Arrays.fill(acc, q * dOut, (q + 1) * dOut, 0.0);
                    }
                }
                for (int i = 0; i < dIn; i++) {
                    int wOff = i * dOut;
                    for (int q = 0; q < nr; q++) {
                        double a = inp.data[(r0 + q) * dIn + i];
                        int aOff = q * dOut;
                        for (int o = 0; o < dOut; o++) {
                            acc[aOff + o] += a * wT[wOff + o];
                        }
                    }
                }
                out.store(acc, 0, r0 * dOut, nr * dOut);
            }
        });
    }

    /** dinp[r,:] += Σ_o dout[r,o]·w[o,:] with w in dOut × dIn layout. */
    private void inputGradient(CpuTensor dinp, CpuTensor dout, double[] w, int rows, int dIn, int dOut) {
        parallel.forRange(blocks(rows), (long) ROW_BLOCK * dIn * dOut, (fromBlock, toBlock) -> {
            double[] acc = new double[ROW_BLOCK * dIn];
            for (int blk = fromBlock; blk < toBlock; blk++) {
                int r0 = blk * ROW_BLOCK;
                int nr = Math.min(ROW_BLOCK, rows - r0);
                Arrays.fill(acc, 0.0);
                for (int o = 0; o < dOut; o++) {
                    int wOff = o * dIn;
                    for (int q = 0; q < nr; q++) {
                        double g = dout.data[(r0 + q) * dOut + o];
                        int aOff = q * dIn;
                        for (int i = 0; i < dIn; i++) {
                            acc[aOff + i] += g * w[wOff + i];
                        }
                    }
                }
                dinp.store(acc, 0, r0 * dIn, nr * dIn);
            }
        });
    }

    @FunctionalInterface
    private interface GradientRowSink {
        /** Receives row o of doutᵀ·inp (reused buffer) and folds it into the gradient. */
        void accept(int o, double[] row);
    }

    /** Row o of doutᵀ·inp = Σ_r doutT[o,r]·inp[r,:], rows r in increasing order. */
    private void weightGradient(double[] doutT, CpuTensor inp, int rows, int dIn, int dOut, GradientRowSink sink) {
        parallel.forRange(dOut, (long) rows * dIn, (from, to) -> {
            double[] g = new double[dIn];
            for (int o = from; o < to; o++) {
                Arrays.fill(g, 0.0);
                int dOff = o * rows;
                for (int r = 0; r < rows; r++) {
                    double d = doutT[dOff + r];
                    int xOff = r * dIn;
                    for (int i = 0; i < dIn; i++) {
                        g[i] += d * inp.data[xOff + i];
                    }
                }
                sink.accept(o, g);
            }
        });
    }

    private void biasGradient(CpuTensor dbias, double[] doutT, int rows, int dOut) {
        parallel.forRange(dOut, rows, (from, to) -> {
            for (int o = from; o < to; o++) {
                double s = 0;
                for (int r = 0; r < rows; r++) {
                    s += doutT[o * rows + r];
                }
                dbias.data[o] = dbias.round(dbias.data[o] + s);
            }
        });
    }

    @Override
    public Tensor attentionState(int B, int T, int heads) {
        return new CpuTensor(DType.F64, new int[] {B, heads, T, T});
    }

    @Override
    public void attentionForward(Tensor out, Tensor state, Tensor qkv, int B, int T, int heads) {
        CpuTensor o = cpu(out);
        CpuTensor att = cpu(state);
        CpuTensor x = cpu(qkv);
        int C3 = x.shape[x.shape.length - 1];
        int C = C3 / 3;
        int hs = C / heads;
        double scale = 1.0 / StrictMath.sqrt(hs);
        parallel.forRange(B * heads, (long) T * T * hs, (from, to) -> {
            double[] row = new double[hs];
            for (int bh = from; bh < to; bh++) {
                int b = bh / heads;
                int h = bh % heads;
                int kBase = b * T * C3 + C + h * hs;
                for (int t = 0; t < T; t++) {
                    int aOff = (bh * T + t) * T;
                    attendRow(x.data, (b * T + t) * C3 + h * hs, x.data, kBase, x.data, kBase + C, C3, t, hs, scale,
                            att.data, aOff, row);
                    Arrays.fill(att.data, aOff + t + 1, aOff + T, 0.0);
                    o.store(row, 0, (b * T + t) * C + h * hs, hs);
                }
                attentionScores.add((long) T * (T + 1) / 2);
            }
        });
    }

    @Override
    public boolean supportsKvCache() {
        return true;
    }

    @Override
    public void kvCacheStore(Tensor keys, Tensor values, Tensor qkv, int B, Tensor position) {
        CpuTensor k = cpu(keys);
        CpuTensor v = cpu(values);
        CpuTensor x = cpu(qkv);
        int C = k.shape[2];
        int maxT = k.shape[1];
        int n = Backend.kvCacheStoreRows(keys, qkv, B);
        int first = position(position, n, maxT, "kvCacheStore");
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < n; j++) {
                int src = (b * n + j) * 3 * C;
                int dst = (b * maxT + first + j) * C;
                k.store(x.data, src + C, dst, C);
                v.store(x.data, src + 2 * C, dst, C);
            }
        }
    }

    @Override
    public void attentionDecode(Tensor out, Tensor qkv, Tensor keys, Tensor values, int B, Tensor positionTensor,
            int heads) {
        CpuTensor o = cpu(out);
        CpuTensor x = cpu(qkv);
        CpuTensor k = cpu(keys);
        CpuTensor v = cpu(values);
        int C = k.shape[2];
        int maxT = k.shape[1];
        int position = position(positionTensor, 1, maxT, "attentionDecode");
        int hs = C / heads;
        double scale = 1.0 / StrictMath.sqrt(hs);
        parallel.forRange(B * heads, 2L * (position + 1) * hs, (from, to) -> {
            double[] row = new double[hs];
            double[] probs = new double[position + 1];
            for (int bh = from; bh < to; bh++) {
                int b = bh / heads;
                int h = bh % heads;
                int base = b * maxT * C + h * hs;
                attendRow(x.data, b * 3 * C + h * hs, k.data, base, v.data, base, C, position, hs, scale, probs, 0,
                        row);
                o.store(row, 0, b * C + h * hs, hs);
                attentionScores.add(position + 1);
            }
        });
    }

    /** The position a decoding operation reads from its one-element I32 tensor; refused unless p … p + n − 1 < maxT. */
    private static int position(Tensor position, int n, int maxT, String operation) {
        CpuTensor t = cpu(position);
        if (t.dtype != DType.I32 || t.ints.length != 1) {
            throw new IllegalArgumentException(operation + " reads its position from a one-element I32 tensor, got "
                    + t.dtype + " " + Arrays.toString(t.shape));
        }
        int p = t.ints[0];
        if (p < 0 || p + n > maxT) {
            throw new IllegalArgumentException(operation + " of " + n + " position(s) from " + p + ", outside the "
                    + maxT + " the cache holds");
        }
        return p;
    }

    /**
     * One query of causal attention over keys and values 0..last (key t2 at {@code k[kBase + t2·stride]}, value t2 at
     * {@code v[vBase + t2·stride]}): probs[pOff + t2] = softmax over t2 of q·k_t2·scale, row = Σ probs·v_t2.
     */
    private static void attendRow(double[] q, int qOff, double[] k, int kBase, double[] v, int vBase, int stride,
            int last, int hs, double scale, double[] probs, int pOff, double[] row) {
        double max = Double.NEGATIVE_INFINITY;
        for (int t2 = 0; t2 <= last; t2++) {
            int kOff = kBase + t2 * stride;
            double s = 0;
            for (int i = 0; i < hs; i++) {
                s += q[qOff + i] * k[kOff + i];
            }
            s *= scale;
            probs[pOff + t2] = s;
            max = Math.max(max, s);
        }
        double sum = 0;
        for (int t2 = 0; t2 <= last; t2++) {
            double e = StrictMath.exp(probs[pOff + t2] - max);
            probs[pOff + t2] = e;
            sum += e;
        }
        double inv = 1.0 / sum;
        for (int t2 = 0; t2 <= last; t2++) {
            probs[pOff + t2] *= inv;
        }
        Arrays.fill(row, 0.0);
        for (int t2 = 0; t2 <= last; t2++) {
            int vOff = vBase + t2 * stride;
            double a = probs[pOff + t2];
            for (int i = 0; i < hs; i++) {
                row[i] += a * v[vOff + i];
            }
        }
    }

    /**
     * Attention scores (query·key products) computed so far by attentionForward and attentionDecode, summed over
     * sequences and heads: what a test reads to tell a T×T recompute from one decoding step over position + 1 keys.
     */
    public long attentionScores() {
        return attentionScores.sum();
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor state, int B, int T,
            int heads) {
        CpuTensor dx = cpu(dqkv);
        CpuTensor dy = cpu(dout);
        CpuTensor x = cpu(qkv);
        CpuTensor att = cpu(state);
        int C3 = x.shape[x.shape.length - 1];
        int C = C3 / 3;
        int hs = C / heads;
        double scale = 1.0 / StrictMath.sqrt(hs);
        // Everything written for (b, h) lies in that head's slice of dqkv[b]: heads are independent tasks.
        parallel.forRange(B * heads, 3L * T * T * hs, (from, to) -> {
            double[] g = new double[T * C3];
            double[] datt = new double[T];
            double[] dpre = new double[T];
            for (int bh = from; bh < to; bh++) {
                int b = bh / heads;
                int h = bh % heads;
                Arrays.fill(g, 0.0);
                for (int t = 0; t < T; t++) {
                    int aOff = (bh * T + t) * T;
                    int dyOff = (b * T + t) * C + h * hs;
                    for (int t2 = 0; t2 <= t; t2++) {
                        int vOff = (b * T + t2) * C3 + 2 * C + h * hs;
                        double s = 0;
                        double a = att.data[aOff + t2];
                        for (int i = 0; i < hs; i++) {
                            s += x.data[vOff + i] * dy.data[dyOff + i];
                            g[t2 * C3 + 2 * C + h * hs + i] += a * dy.data[dyOff + i];
                        }
                        datt[t2] = s;
                    }
                    double dot = 0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        dot += att.data[aOff + t2] * datt[t2];
                    }
                    for (int t2 = 0; t2 <= t; t2++) {
                        dpre[t2] = att.data[aOff + t2] * (datt[t2] - dot) * scale;
                    }
                    int qOff = (b * T + t) * C3 + h * hs;
                    for (int t2 = 0; t2 <= t; t2++) {
                        int kOff = (b * T + t2) * C3 + C + h * hs;
                        double d = dpre[t2];
                        for (int i = 0; i < hs; i++) {
                            g[t * C3 + h * hs + i] += x.data[kOff + i] * d;
                            g[t2 * C3 + C + h * hs + i] += x.data[qOff + i] * d;
                        }
                    }
                }
                for (int t = 0; t < T; t++) {
                    for (int part = 0; part < 3; part++) {
                        int col = part * C + h * hs;
                        int off = (b * T + t) * C3 + col;
                        for (int i = 0; i < hs; i++) {
                            dx.data[off + i] = dx.round(g[t * C3 + col + i]);
                        }
                    }
                }
            }
        });
    }

    @Override
    public void geluForward(Tensor out, Tensor inp) {
        CpuTensor o = cpu(out);
        CpuTensor x = cpu(inp);
        parallel.forRange(x.length(), 20, (from, to) -> {
            for (int i = from; i < to; i++) {
                double v = x.data[i];
                double u = GELU_SCALE * (v + 0.044715 * v * v * v);
                o.data[i] = o.round(0.5 * v * (1.0 + StrictMath.tanh(u)));
            }
        });
    }

    @Override
    public void geluBackward(Tensor dinp, Tensor inp, Tensor dout) {
        CpuTensor dx = cpu(dinp);
        CpuTensor x = cpu(inp);
        CpuTensor dy = cpu(dout);
        parallel.forRange(x.length(), 30, (from, to) -> {
            for (int i = from; i < to; i++) {
                double v = x.data[i];
                double u = GELU_SCALE * (v + 0.044715 * v * v * v);
                double th = StrictMath.tanh(u);
                double sech2 = 1.0 - th * th;
                double grad = 0.5 * (1.0 + th) + 0.5 * v * sech2 * GELU_SCALE * (1.0 + 3.0 * 0.044715 * v * v);
                dx.data[i] = dx.round(grad * dy.data[i]);
            }
        });
    }

    @Override
    public void residualForward(Tensor out, Tensor a, Tensor b) {
        CpuTensor o = cpu(out);
        CpuTensor x = cpu(a);
        CpuTensor y = cpu(b);
        parallel.forRange(o.length(), 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                o.data[i] = x.data[i] + y.data[i];
            }
            o.roundInPlace(from, to);
        });
    }

    @Override
    public void crossEntropyForwardBackward(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets,
            double gradScale) {
        CpuTensor loss = cpu(losses);
        CpuTensor z = cpu(logits);
        CpuTensor dz = dlogits == null ? null : cpu(dlogits);
        CpuTensor tgt = cpu(targets);
        int V = z.shape[z.shape.length - 1];
        int rows = z.length() / V;
        parallel.forRange(rows, 3L * V, (from, to) -> {
            double[] row = new double[V];
            for (int r = from; r < to; r++) {
                int off = r * V;
                int target = tgt.ints[r];
                if (target < 0 || target >= V) {
                    throw new IllegalArgumentException("target id " + target + " outside the vocabulary [0, " + V
                            + ")");
                }
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < V; v++) {
                    max = Math.max(max, z.data[off + v]);
                }
                double sum = 0;
                for (int v = 0; v < V; v++) {
                    double e = StrictMath.exp(z.data[off + v] - max);
                    row[v] = e;
                    sum += e;
                }
                loss.data[r] = loss.round(max + StrictMath.log(sum) - z.data[off + target]);
                if (dz != null) {
                    double inv = 1.0 / sum;
                    for (int v = 0; v < V; v++) {
                        row[v] = (row[v] * inv - (v == target ? 1.0 : 0.0)) * gradScale;
                    }
                    dz.store(row, 0, off, V);
                }
            }
        });
    }

    @Override
    public void addScaledSum(Tensor acc, Tensor x, double scale) {
        CpuTensor a = cpu(acc);
        if (a.dtype() != DType.F64 || a.length() != 1) {
            throw new IllegalArgumentException("addScaledSum accumulates into a one-element F64 tensor, got "
                    + a.dtype() + " of " + a.length());
        }
        double s = 0;
        for (double v : cpu(x).data) {
            s += v;
        }
        a.data[0] = a.round(a.data[0] + scale * s);
    }

    // ---- optimizer ------------------------------------------------------------------------------------------------

    @Override
    public void sumOfSquares(Tensor acc, List<Tensor> tensors) {
        for (Tensor t : tensors) {
            sumOfSquares(cpu(acc), cpu(t));
        }
    }

    private void sumOfSquares(CpuTensor a, CpuTensor x) {
        int n = x.length();
        int nBlocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
        double[] partial = new double[nBlocks];
        parallel.forRange(nBlocks, SUM_BLOCK, (from, to) -> {
            for (int blk = from; blk < to; blk++) {
                double s = 0;
                int end = Math.min(n, (blk + 1) * SUM_BLOCK);
                for (int i = blk * SUM_BLOCK; i < end; i++) {
                    s += x.data[i] * x.data[i];
                }
                partial[blk] = s;
            }
        });
        double total = a.data[0];
        for (double p : partial) {
            total += p;
        }
        a.data[0] = a.round(total);
    }

    @Override
    public void adamw(List<AdamWUpdate> updates, Tensor gradNormSquared) {
        for (AdamWUpdate u : updates) {
            adamw(u.param(), u.grad(), u.m(), u.v(), gradNormSquared, u.step());
        }
    }

    private void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradNormSquared, AdamWStep s) {
        CpuTensor p = cpu(param);
        CpuTensor g = cpu(grad);
        CpuTensor mt = cpu(m);
        CpuTensor vt = cpu(v);
        double coef = 1.0;
        if (s.clip() > 0) {
            double norm = StrictMath.sqrt(cpu(gradNormSquared).data[0]);
            coef = Math.min(1.0, s.clip() / (norm + 1e-6));
        }
        double clipCoef = coef;
        double bc1 = 1.0 - StrictMath.pow(s.beta1(), s.step());
        double bc2 = 1.0 - StrictMath.pow(s.beta2(), s.step());
        double decay = 1.0 - s.lr() * s.weightDecay();
        parallel.forRange(p.length(), 12, (from, to) -> {
            for (int i = from; i < to; i++) {
                double gi = g.data[i] * clipCoef;
                double mi = mt.round(s.beta1() * mt.data[i] + (1.0 - s.beta1()) * gi);
                double vi = vt.round(s.beta2() * vt.data[i] + (1.0 - s.beta2()) * gi * gi);
                mt.data[i] = mi;
                vt.data[i] = vi;
                double mHat = mi / bc1;
                double vHat = vi / bc2;
                p.data[i] = p.round(p.data[i] * decay - s.lr() * mHat / (StrictMath.sqrt(vHat) + s.eps()));
            }
        });
    }

    @Override
    public void close() {
        parallel.close();
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    private static int blocks(int rows) {
        return (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    }

    private static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }

    private static CpuTensor cpu(Tensor t) {
        if (t instanceof CpuTensor c) {
            return c;
        }
        throw new IllegalArgumentException("tensor of another backend passed to the CPU backend: " + t);
    }

    private static CpuSparseLinear sparse(SparseLinear w) {
        if (w instanceof CpuSparseLinear c) {
            return c;
        }
        throw new IllegalArgumentException("sparse layer of another backend passed to the CPU backend: " + w);
    }

    private static void requireLength(CpuTensor t, long n, String what) {
        if (t.length() != n) {
            throw new IllegalArgumentException(what + ": tensor " + Arrays.toString(t.shape) + " holds "
                    + t.length() + " values, got " + n);
        }
    }
}
