#pragma once
#include "common.cuh"
#include "reductions.cuh"

// ---- LayerNorm ---------------------------------------------------------------------------------------------------

// One warp per row: mean, then the biased variance around it (two passes, as the CPU), eps 1e-5.
extern "C" __global__ void layernorm_forward(void* out, int dtOut, void* mean, int dtMean, void* rstd, int dtRstd,
                                             const void* inp, int dtInp, const void* w, int dtW, const void* b,
                                             int dtB, int rows, int C) {
    int warpsPerBlock = blockDim.x >> 5;
    int r = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    size_t off = (size_t)r * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += ld(inp, off + c, dtInp);
    float m = warpSum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = ld(inp, off + c, dtInp) - m;
        v += d * d;
    }
    float var = warpSum(v) / C;
    float rs = rsqrtf(var + 1e-5f);
    for (int c = lane; c < C; c += 32) {
        float x = (ld(inp, off + c, dtInp) - m) * rs;
        st(out, off + c, x * ld(w, c, dtW) + ld(b, c, dtB), dtOut);
    }
    if (lane == 0) {
        st(mean, r, m, dtMean);
        st(rstd, r, rs, dtRstd);
    }
}

// dinp += (dnorm − mean(dnorm) − norm·mean(dnorm·norm))·rstd, one warp per row.
extern "C" __global__ void layernorm_backward_input(void* dinp, int dtDinp, const void* dout, int dtDout,
                                                    const void* inp, int dtInp, const void* w, int dtW,
                                                    const void* mean, int dtMean, const void* rstd, int dtRstd,
                                                    int rows, int C) {
    int warpsPerBlock = blockDim.x >> 5;
    int r = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    size_t off = (size_t)r * C;
    float m = ld(mean, r, dtMean);
    float s = ld(rstd, r, dtRstd);
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float norm = (ld(inp, off + c, dtInp) - m) * s;
        float dnorm = ld(w, c, dtW) * ld(dout, off + c, dtDout);
        a += dnorm;
        bsum += dnorm * norm;
    }
    float dnormMean = warpSum(a) / C;
    float dnormNormMean = warpSum(bsum) / C;
    for (int c = lane; c < C; c += 32) {
        float norm = (ld(inp, off + c, dtInp) - m) * s;
        float dnorm = ld(w, c, dtW) * ld(dout, off + c, dtDout);
        float g = (dnorm - dnormMean - norm * dnormNormMean) * s;
        st(dinp, off + c, ld(dinp, off + c, dtDinp) + g, dtDinp);
    }
}

// Values 8v … 8v + 7 of a LayerNorm parameter: two 16-byte loads when it is fp32 (the master weights).
__device__ __forceinline__ void param8(const void* p, int v, int dt, float* f) {
    if (dt == DT_F32) {
        float4 a = ((const float4*)p)[2 * v], b = ((const float4*)p)[2 * v + 1];
        f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
        f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = ld(p, (size_t)v * 8 + e, dt);
    }
}

// The LayerNorm of row r held in registers as packed bf16 (lane l: vectors l, l + 32, …), written to out, mean, rstd.
template <int VPL>
__device__ __forceinline__ void layernorm_row_bf16(const uint4 (&raw)[VPL], void* out, float* mean, float* rstd,
                                                   const void* w, int dtW, const void* b, int dtB, int r, int C) {
    int lane = threadIdx.x & 31;
    int nv = C / 8;
    size_t row = (size_t)r * nv;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        if (lane + 32 * k < nv) {
            float x[8];
            unpack8(raw[k], x);
#pragma unroll
            for (int e = 0; e < 8; e++) s += x[e];
        }
    }
    float m = warpSum(s) / C;
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        if (lane + 32 * k < nv) {
            float x[8];
            unpack8(raw[k], x);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float d = x[e] - m;
                q += d * d;
            }
        }
    }
    float rs = rsqrtf(warpSum(q) / C + 1e-5f);
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        int v = lane + 32 * k;
        if (v < nv) {
            float x[8], wv[8], bv[8], y[8];
            unpack8(raw[k], x);
            param8(w, v, dtW, wv);
            param8(b, v, dtB, bv);
#pragma unroll
            for (int e = 0; e < 8; e++) y[e] = (x[e] - m) * rs * wv[e] + bv[e];
            store8(out, row + v, y);
        }
    }
    if (lane == 0) {
        mean[r] = m;
        rstd[r] = rs;
    }
}

// LayerNorm with bf16 activations (fp32 mean and rstd), one warp per row, the row held in registers as packed bf16:
// lane l owns the 8-value vectors l, l + 32, …, at most VPL of them (C ≤ 256·VPL, C a multiple of 8). Every load of
// a row is issued before the first reduction, so a warp waits for memory once. The same two-pass mean and variance as
// layernorm_forward; only the order of the per-lane partial sums differs.
template <int VPL>
__device__ void layernorm_forward_bf16_impl(void* out, float* mean, float* rstd, const void* inp, const void* w,
                                            int dtW, const void* b, int dtB, int rows, int C) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int nv = C / 8;
    size_t row = (size_t)r * nv;
    uint4 raw[VPL];
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        if (lane + 32 * k < nv) raw[k] = ((const uint4*)inp)[row + lane + 32 * k];
    }
    layernorm_row_bf16<VPL>(raw, out, mean, rstd, w, dtW, b, dtB, r, C);
}

// residual = a + b, then its LayerNorm (llm.c's fused_residual_forward), bf16 throughout: the sum is rounded to bf16,
// stored, and normalised from those rounded values, so residual, out, mean and rstd are the bits of
// residual_forward_bf16 then layernorm_forward_bf16; the LayerNorm just does not read residual back from memory.
template <int VPL>
__device__ void residual_layernorm_forward_bf16_impl(void* residual, void* out, float* mean, float* rstd,
                                                     const void* a, const void* b, const void* w, int dtW,
                                                     const void* bias, int dtBias, int rows, int C) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int nv = C / 8;
    size_t row = (size_t)r * nv;
    uint4 raw[VPL], other[VPL];
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        if (lane + 32 * k < nv) {
            raw[k] = ((const uint4*)a)[row + lane + 32 * k];
            other[k] = ((const uint4*)b)[row + lane + 32 * k];
        }
    }
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        if (lane + 32 * k < nv) {
            float x[8], y[8];
            unpack8(raw[k], x);
            unpack8(other[k], y);
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] = x[e] + y[e];
            raw[k] = pack8(x);
            ((uint4*)residual)[row + lane + 32 * k] = raw[k];
        }
    }
    layernorm_row_bf16<VPL>(raw, out, mean, rstd, w, dtW, bias, dtBias, r, C);
}

// LayerNorm's backward with bf16 dinp, dout and inp (fp32 mean and rstd) in one pass over the rows: dinp +=
// (dnorm − mean(dnorm) − norm·mean(dnorm·norm))·rstd, and from the same loads the parameter gradients' partial sums.
// A fixed grid of G blocks of W warps (chosen by the launcher from the device and C); warp j = block·W + warp takes
// rows j, j + G·W, j + 2·G·W, … in that order, one row at a time in the whole warp: lane l owns the 8-value vectors
// l, l + 32, … of the row, at most VPL of them (C ≤ 256·VPL, C a multiple of 8). The row's loads are all issued before
// the first reduction; its inp and dout then wait for the second pass in shared memory (each lane reads back only the
// vectors it wrote, so no barrier), not in registers: a lane holding both as floats needed 168 registers at C = 1600.
// The input gradient is the arithmetic of the row-per-warp kernel this replaced, in the same order (the same bits).
//
// Each warp adds its rows' dout·norm and dout into sums of its own in shared memory, each lane into its own vectors'
// (no atomics, no barrier); at the end the block adds its warps' sums in warp order into one partial per block,
// partial[block][c] (Σ dout·norm) and partial[G + block][c] (Σ dout), which column_sums_finish then adds in order into
// dweight and dbias. Every sum runs in a fixed order, so the results repeat bit for bit on one device.
//
// Dynamic shared memory, per warp: the stash of inp and dout (one uint4 per vector each), then the sums as four planes
// of one float4 per vector (Σ dout·norm of values 0–3 and 4–7 of the vector, then Σ dout of the same), so that a
// warp's 16-byte accesses are to consecutive addresses: 6 uint4 = 96 bytes per vector (LAYERNORM_BACKWARD_WARP_BYTES).
template <int VPL>
__device__ void layernorm_backward_bf16_impl(void* dinp, float* partial, const void* dout, const void* inp,
                                             const void* w, int dtW, const float* mean, const float* rstd, int rows,
                                             int C) {
    extern __shared__ uint4 shared[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    int nv = C / 8;
    uint4* stashX = shared + (size_t)warp * 6 * nv;
    uint4* stashDy = stashX + nv;
    float4* sums = (float4*)(stashDy + nv);
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        int v = lane + 32 * k;
        if (v < nv) {
#pragma unroll
            for (int p = 0; p < 4; p++) sums[p * nv + v] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }
    for (int r = blockIdx.x * warps + warp; r < rows; r += gridDim.x * warps) {
        size_t row = (size_t)r * nv;
        float m = mean[r], s = rstd[r];
        uint4 rx[VPL], rdy[VPL];
#pragma unroll
        for (int k = 0; k < VPL; k++) {
            int v = lane + 32 * k;
            if (v < nv) {
                rx[k] = ((const uint4*)inp)[row + v];
                rdy[k] = ((const uint4*)dout)[row + v];
            }
        }
        float a = 0.0f, bsum = 0.0f;
#pragma unroll
        for (int k = 0; k < VPL; k++) {
            int v = lane + 32 * k;
            if (v < nv) {
                stashX[v] = rx[k];
                stashDy[v] = rdy[k];
                float x[8], dy[8], wv[8];
                unpack8(rx[k], x);
                unpack8(rdy[k], dy);
                param8(w, v, dtW, wv);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float norm = (x[e] - m) * s;
                    float dnorm = wv[e] * dy[e];
                    a += dnorm;
                    bsum += dnorm * norm;
                }
            }
        }
        float dnormMean = warpSum(a) / C;
        float dnormNormMean = warpSum(bsum) / C;
        // The row's dinp, all of it loaded before the first store (the stores below may alias it for the compiler).
        uint4 rd[VPL];
#pragma unroll
        for (int k = 0; k < VPL; k++) {
            int v = lane + 32 * k;
            if (v < nv) rd[k] = ((const uint4*)dinp)[row + v];
        }
#pragma unroll
        for (int k = 0; k < VPL; k++) {
            int v = lane + 32 * k;
            if (v < nv) {
                float x[8], dy[8], wv[8], d[8];
                unpack8(rd[k], d);
                unpack8(stashX[v], x);
                unpack8(stashDy[v], dy);
                param8(w, v, dtW, wv);
                float4 w0 = sums[v], w1 = sums[nv + v], b0 = sums[2 * nv + v], b1 = sums[3 * nv + v];
                float gw[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
                float gb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float norm = (x[e] - m) * s;
                    float dnorm = wv[e] * dy[e];
                    d[e] = d[e] + (dnorm - dnormMean - norm * dnormNormMean) * s;
                    gw[e] += norm * dy[e];
                    gb[e] += dy[e];
                }
                store8(dinp, row + v, d);
                sums[v] = make_float4(gw[0], gw[1], gw[2], gw[3]);
                sums[nv + v] = make_float4(gw[4], gw[5], gw[6], gw[7]);
                sums[2 * nv + v] = make_float4(gb[0], gb[1], gb[2], gb[3]);
                sums[3 * nv + v] = make_float4(gb[4], gb[5], gb[6], gb[7]);
            }
        }
    }
    __syncthreads();
    // Element i of a warp's planes: plane i / nv (Σ dout·norm for 0 and 1, Σ dout for 2 and 3), vector i mod nv.
    const float4* first = (const float4*)(shared + 2 * nv);
    for (int i = threadIdx.x; i < 4 * nv; i += blockDim.x) {
        float4 t = first[i];
        for (int j = 1; j < warps; j++) {
            float4 u = first[(size_t)j * 6 * nv + i];
            t.x += u.x;
            t.y += u.y;
            t.z += u.z;
            t.w += u.w;
        }
        int plane = i / nv, v = i - plane * nv;
        size_t chunk = plane < 2 ? blockIdx.x : gridDim.x + blockIdx.x;
        ((float4*)(partial + chunk * C))[2 * v + (plane & 1)] = t;
    }
}

#define LAYERNORM_BF16_KERNELS(VPL)                                                                                  \
    extern "C" __global__ void layernorm_forward_bf16_##VPL(void* out, float* mean, float* rstd, const void* inp,   \
                                                            const void* w, int dtW, const void* b, int dtB,         \
                                                            int rows, int C) {                                      \
        layernorm_forward_bf16_impl<VPL>(out, mean, rstd, inp, w, dtW, b, dtB, rows, C);                            \
    }                                                                                                               \
    extern "C" __global__ void residual_layernorm_forward_bf16_##VPL(                                               \
        void* residual, void* out, float* mean, float* rstd, const void* a, const void* b, const void* w, int dtW,   \
        const void* bias, int dtBias, int rows, int C) {                                                             \
        residual_layernorm_forward_bf16_impl<VPL>(residual, out, mean, rstd, a, b, w, dtW, bias, dtBias, rows, C);   \
    }                                                                                                               \
    extern "C" __global__ void layernorm_backward_bf16_##VPL(void* dinp, float* partial, const void* dout,          \
                                                             const void* inp, const void* w, int dtW,               \
                                                             const float* mean, const float* rstd, int rows,        \
                                                             int C) {                                               \
        layernorm_backward_bf16_impl<VPL>(dinp, partial, dout, inp, w, dtW, mean, rstd, rows, C);                   \
    }

LAYERNORM_BF16_KERNELS(1)
LAYERNORM_BF16_KERNELS(2)
LAYERNORM_BF16_KERNELS(3)
LAYERNORM_BF16_KERNELS(4)
LAYERNORM_BF16_KERNELS(5)
LAYERNORM_BF16_KERNELS(6)
LAYERNORM_BF16_KERNELS(7)
LAYERNORM_BF16_KERNELS(8)
LAYERNORM_BF16_KERNELS(9)
LAYERNORM_BF16_KERNELS(10)

// Per-channel partial sums over a chunk of rows: partial[chunk][c] = Σ dout·norm, partial[chunks + chunk][c] = Σ dout.
extern "C" __global__ void layernorm_backward_params_partial(float* partial, const void* dout, int dtDout,
                                                             const void* inp, int dtInp, const void* mean,
                                                             int dtMean, const void* rstd, int dtRstd, int rows,
                                                             int C, int chunkRows, int chunks) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (c >= C) return;
    int r0 = chunk * chunkRows;
    int r1 = min(rows, r0 + chunkRows);
    float gw = 0.0f, gb = 0.0f;
    for (int r = r0; r < r1; r++) {
        size_t i = (size_t)r * C + c;
        float g = ld(dout, i, dtDout);
        gw += (ld(inp, i, dtInp) - ld(mean, r, dtMean)) * ld(rstd, r, dtRstd) * g;
        gb += g;
    }
    partial[(size_t)chunk * C + c] = gw;
    partial[(size_t)(chunks + chunk) * C + c] = gb;
}

// layernorm_backward_params_partial for bf16 dout and inp (fp32 mean, rstd) with C % 8 == 0: as
// column_sums_partial_bf16, a block takes 32 vectors of 8 columns and a chunk of rows, warp w every W-th row from w,
// then warp 0 adds the warps' sums in warp order (a fixed order; few partials for column_sums_finish to add).
extern "C" __global__ void layernorm_backward_params_partial_bf16(float* partial, const void* dout, const void* inp,
                                                                  const float* mean, const float* rstd, int rows,
                                                                  int C, int chunkRows, int chunks) {
    __shared__ float sums[COLUMN_SUMS_MAX_WARPS][32][17];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int vectors = C / 8;
    int v = blockIdx.x * 32 + lane;
    int chunk = blockIdx.y;
    int r0 = chunk * chunkRows;
    int r1 = min(rows, r0 + chunkRows);
    float gw[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    float gb[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (v < vectors) {
#pragma unroll 4
        for (int r = r0 + warp; r < r1; r += warps) {
            float g[8], x[8];
            load8(dout, (size_t)r * vectors + v, g);
            load8(inp, (size_t)r * vectors + v, x);
            float mu = mean[r], rs = rstd[r];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                gw[k] += (x[k] - mu) * rs * g[k];
                gb[k] += g[k];
            }
        }
    }
#pragma unroll
    for (int k = 0; k < 8; k++) {
        sums[warp][lane][k] = gw[k];
        sums[warp][lane][8 + k] = gb[k];
    }
    __syncthreads();
    if (warp != 0 || v >= vectors) return;
    for (int w = 1; w < warps; w++) {
#pragma unroll
        for (int k = 0; k < 8; k++) {
            gw[k] += sums[w][lane][k];
            gb[k] += sums[w][lane][8 + k];
        }
    }
    float4* w = (float4*)(partial + (size_t)chunk * C) + 2 * v;
    float4* b = (float4*)(partial + (size_t)(chunks + chunk) * C) + 2 * v;
    w[0] = make_float4(gw[0], gw[1], gw[2], gw[3]);
    w[1] = make_float4(gw[4], gw[5], gw[6], gw[7]);
    b[0] = make_float4(gb[0], gb[1], gb[2], gb[3]);
    b[1] = make_float4(gb[4], gb[5], gb[6], gb[7]);
}
