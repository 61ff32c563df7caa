// The project's CUDA kernels, one per Backend operation (llm.c style), checked against the CPU backend by the parity
// tests in engine-cuda. Every float tensor argument comes with a storage code (DT_*) so one kernel serves the fp32
// master weights, the bf16 activations and the fp64 accumulators; the code is uniform across a launch, so the branch
// costs nothing measurable next to the memory traffic. No float atomics anywhere: every reduction runs in a fixed
// order, so results do not depend on scheduling.
#include <cuda_bf16.h>
#include <stdint.h>

#define DT_F32 0
#define DT_BF16 1
#define DT_F64 2

// Error codes a kernel can leave in the backend's error word (read on every download).
#define ERR_TOKEN_OUT_OF_RANGE 1
#define ERR_TARGET_OUT_OF_RANGE 2
#define ERR_COLUMN_MASK_OVER_TWO_OF_FOUR 3
#define ERR_POSITION_OUT_OF_RANGE 4

__device__ __forceinline__ float ld(const void* p, size_t i, int dt) {
    if (dt == DT_BF16) return __bfloat162float(((const __nv_bfloat16*)p)[i]);
    if (dt == DT_F32) return ((const float*)p)[i];
    return (float)((const double*)p)[i];
}

__device__ __forceinline__ double ldd(const void* p, size_t i, int dt) {
    if (dt == DT_BF16) return (double)__bfloat162float(((const __nv_bfloat16*)p)[i]);
    if (dt == DT_F32) return (double)((const float*)p)[i];
    return ((const double*)p)[i];
}

__device__ __forceinline__ void st(void* p, size_t i, float v, int dt) {
    if (dt == DT_BF16) ((__nv_bfloat16*)p)[i] = __float2bfloat16_rn(v);
    else if (dt == DT_F32) ((float*)p)[i] = v;
    else ((double*)p)[i] = (double)v;
}

// A double result stored at the tensor's precision: through float first, as the CPU backend rounds.
__device__ __forceinline__ void std_(void* p, size_t i, double v, int dt) {
    if (dt == DT_F64) ((double*)p)[i] = v;
    else st(p, i, (float)v, dt);
}

__device__ __forceinline__ void report(int* err, int code) {
    atomicCAS(err, 0, code);
}

__device__ __forceinline__ float warpSum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

__device__ __forceinline__ float warpMax(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

__device__ __forceinline__ double warpSum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

// Block-wide sum in a fixed tree order, in float or double; every thread gets the result. blockDim.x a multiple of 32,
// at most 1024.
template <typename F>
__device__ F blockSum(F v, F* shared32) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warpSum(v);
    __syncthreads();
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    F t = lane < warps ? shared32[lane] : F(0);
    return warpSum(t);
}

__device__ float blockMax(float v, float* shared32) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warpMax(v);
    __syncthreads();
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    float t = lane < warps ? shared32[lane] : -INFINITY;
    return warpMax(t);
}

// Eight bf16 values in one 16-byte access: the bf16 fast paths below read and write whole vectors, element v covering
// values 8v … 8v + 7 (tensors are 256-byte aligned and their lengths checked to be multiples of 8 by the launcher).
// unpack8 also serves kernels that hold a vector packed (4 registers instead of 8) and unpack it where used.
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
    const __nv_bfloat162* h = (const __nv_bfloat162*)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}

__device__ __forceinline__ void load8(const void* p, size_t v, float* f) {
    unpack8(((const uint4*)p)[v], f);
}

__device__ __forceinline__ void store8(void* p, size_t v, const float* f) {
    uint4 u;
    __nv_bfloat162* h = (__nv_bfloat162*)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    ((uint4*)p)[v] = u;
}

// ---- elementwise -------------------------------------------------------------------------------------------------

extern "C" __global__ void convert(void* dst, int dtDst, const void* src, int dtSrc, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (dtDst == DT_F64 || dtSrc == DT_F64) std_(dst, i, ldd(src, i, dtSrc), dtDst);
        else st(dst, i, ld(src, i, dtSrc), dtDst);
    }
}

// dst += src (elementwise), rounded once to dst's precision.
extern "C" __global__ void add_into(void* dst, int dtDst, const void* src, int dtSrc, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        st(dst, i, ld(dst, i, dtDst) + ld(src, i, dtSrc), dtDst);
    }
}

// out[r, o] = src[r, o] + bias[o] (bias may be null): the epilogue of a GEMM computed into a scratch buffer.
extern "C" __global__ void linear_epilogue(void* out, int dtOut, const void* src, int dtSrc, const void* bias,
                                           int dtBias, size_t rows, int cols) {
    size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = ld(src, i, dtSrc);
        if (bias != nullptr) v += ld(bias, i % cols, dtBias);
        st(out, i, v, dtOut);
    }
}

// out[r, o] += bias[o], in place.
extern "C" __global__ void add_bias(void* out, int dtOut, const void* bias, int dtBias, size_t rows, int cols) {
    size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        st(out, i, ld(out, i, dtOut) + ld(bias, i % cols, dtBias), dtOut);
    }
}

extern "C" __global__ void residual_forward(void* out, int dtOut, const void* a, int dtA, const void* b, int dtB,
                                            size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        st(out, i, ld(a, i, dtA) + ld(b, i, dtB), dtOut);
    }
}

#define GELU_SCALE 0.7978845608028654f

__device__ __forceinline__ float gelu(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

__device__ __forceinline__ float geluGrad(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = tanhf(u);
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

extern "C" __global__ void gelu_forward(void* out, int dtOut, const void* inp, int dtInp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        st(out, i, gelu(ld(inp, i, dtInp)), dtOut);
    }
}

extern "C" __global__ void gelu_backward(void* dinp, int dtDinp, const void* inp, int dtInp, const void* dout,
                                         int dtDout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        st(dinp, i, geluGrad(ld(inp, i, dtInp)) * ld(dout, i, dtDout), dtDinp);
    }
}

// ---- elementwise, bf16 fast paths (n8 vectors of 8; the same arithmetic per element as the kernels above) ---------

extern "C" __global__ void gelu_forward_bf16(void* out, const void* inp, size_t n8) {
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n8; v += (size_t)gridDim.x * blockDim.x) {
        float x[8];
        load8(inp, v, x);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = gelu(x[k]);
        store8(out, v, x);
    }
}

extern "C" __global__ void gelu_backward_bf16(void* dinp, const void* inp, const void* dout, size_t n8) {
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n8; v += (size_t)gridDim.x * blockDim.x) {
        float x[8], g[8];
        load8(inp, v, x);
        load8(dout, v, g);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = geluGrad(x[k]) * g[k];
        store8(dinp, v, x);
    }
}

extern "C" __global__ void residual_forward_bf16(void* out, const void* a, const void* b, size_t n8) {
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n8; v += (size_t)gridDim.x * blockDim.x) {
        float x[8], y[8];
        load8(a, v, x);
        load8(b, v, y);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = x[k] + y[k];
        store8(out, v, x);
    }
}

// out[r, o] += bias[o] in place, cols a multiple of 8 (vector v starts at column 8v mod cols).
extern "C" __global__ void add_bias_bf16(void* out, const void* bias, int dtBias, size_t n8, int cols) {
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n8; v += (size_t)gridDim.x * blockDim.x) {
        float x[8];
        load8(out, v, x);
        int c = (int)((v * 8) % cols);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = x[k] + ld(bias, c + k, dtBias);
        store8(out, v, x);
    }
}

// ---- embedding ---------------------------------------------------------------------------------------------------

// Row r sits at position r mod T, or, for one decoding step (position not null), every row at *position: read on the
// device, so that a recorded step replays at the position uploaded for it. One outside wpe's P rows writes nothing.
extern "C" __global__ void embedding_forward(void* out, int dtOut, const int* tokens, const void* wte, int dtWte,
                                             const void* wpe, int dtWpe, int B, int T, int C, int V,
                                             const int* position, int P, int* err) {
    int at = position ? *position : -1;
    if (position && (at < 0 || at >= P)) {
        if (blockIdx.x == 0 && threadIdx.x == 0) report(err, ERR_POSITION_OUT_OF_RANGE);
        return;
    }
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / C;
        int c = (int)(i % C);
        int id = tokens[r];
        int t = position ? at : (int)(r % T);
        if (id < 0 || id >= V) {
            report(err, ERR_TOKEN_OUT_OF_RANGE);
            continue;
        }
        st(out, i, ld(wte, (size_t)id * C + c, dtWte) + ld(wpe, (size_t)t * C + c, dtWpe), dtOut);
    }
}

// One thread per channel walks the rows in order, like the CPU reference: a fixed summation order per vocabulary row
// with no atomics. Only C threads: the fallback when the token buckets below are not available.
extern "C" __global__ void embedding_backward(void* dwte, int dtDwte, void* dwpe, int dtDwpe, const void* dout,
                                              int dtDout, const int* tokens, int B, int T, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        int id = tokens[r];
        int t = (int)(r % T);
        float g = ld(dout, r * C + c, dtDout);
        size_t ie = (size_t)id * C + c;
        size_t ip = (size_t)t * C + c;
        st(dwte, ie, ld(dwte, ie, dtDwte) + g, dtDwte);
        st(dwpe, ip, ld(dwpe, ip, dtDwpe) + g, dtDwpe);
    }
}

// dwte for each distinct token u (block rows, u += gridDim.y), channels across threads: its rows (bucketRows[start[u]
// .. start[u+1]), increasing, as the CPU adds them) summed in order into its vocabulary row, rounded after every add.
// The count of distinct tokens is read on the device (bucketStart[rows + 1]), so a recorded pass replays with others.
extern "C" __global__ void embedding_backward_wte_buckets(void* dwte, int dtDwte, const void* dout, int dtDout,
                                                          const int* bucketTokens, const int* bucketStart,
                                                          const int* bucketRows, int C, int rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int distinct = bucketStart[rows + 1];
    for (int u = blockIdx.y; u < distinct; u += gridDim.y) {
        size_t ie = (size_t)bucketTokens[u] * C + c;
        float acc = ld(dwte, ie, dtDwte);
        for (int i = bucketStart[u]; i < bucketStart[u + 1]; i++) {
            acc = acc + ld(dout, (size_t)bucketRows[i] * C + c, dtDout);
            if (dtDwte == DT_BF16) acc = __bfloat162float(__float2bfloat16_rn(acc));
        }
        st(dwte, ie, acc, dtDwte);
    }
}

// dwpe[t, c] += Σ_b dout[b·T + t, c], b in order, rounded after every add.
extern "C" __global__ void embedding_backward_wpe(void* dwpe, int dtDwpe, const void* dout, int dtDout, int B, int T,
                                                  int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    size_t t = i / C;
    int c = (int)(i % C);
    float acc = ld(dwpe, i, dtDwpe);
    for (int b = 0; b < B; b++) {
        acc = acc + ld(dout, ((size_t)b * T + t) * C + c, dtDout);
        if (dtDwpe == DT_BF16) acc = __bfloat162float(__float2bfloat16_rn(acc));
    }
    st(dwpe, i, acc, dtDwpe);
}

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

// dinp += (dnorm − mean(dnorm) − norm·mean(dnorm·norm))·rstd with bf16 dinp, dout and inp, one warp per row, its
// loads all issued before the first use. The row's inp and dout wait for the second pass in shared memory (each lane reads back only the vectors it wrote, so no
// barrier), not in registers: a lane holding both as floats needed 168 registers at C = 1600, one block of 8 warps per
// SM, too few rows in flight to hide the memory's latency. Dynamic shared memory: 32 bytes per vector per warp.
template <int VPL>
__device__ void layernorm_backward_input_bf16_impl(void* dinp, const void* dout, const void* inp, const void* w,
                                                   int dtW, const float* mean, const float* rstd, int rows, int C) {
    extern __shared__ uint4 stash[];
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int nv = C / 8;
    uint4* stashX = stash + (size_t)(threadIdx.x >> 5) * 2 * nv;
    uint4* stashDy = stashX + nv;
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
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        int v = lane + 32 * k;
        if (v < nv) {
            float x[8], dy[8], wv[8], d[8];
            load8(dinp, row + v, d);
            unpack8(stashX[v], x);
            unpack8(stashDy[v], dy);
            param8(w, v, dtW, wv);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float norm = (x[e] - m) * s;
                float dnorm = wv[e] * dy[e];
                d[e] = d[e] + (dnorm - dnormMean - norm * dnormNormMean) * s;
            }
            store8(dinp, row + v, d);
        }
    }
}

#define LAYERNORM_BF16_KERNELS(VPL)                                                                                  \
    extern "C" __global__ void layernorm_forward_bf16_##VPL(void* out, float* mean, float* rstd, const void* inp,   \
                                                            const void* w, int dtW, const void* b, int dtB,         \
                                                            int rows, int C) {                                      \
        layernorm_forward_bf16_impl<VPL>(out, mean, rstd, inp, w, dtW, b, dtB, rows, C);                            \
    }                                                                                                               \
    extern "C" __global__ void layernorm_backward_input_bf16_##VPL(void* dinp, const void* dout, const void* inp,   \
                                                                   const void* w, int dtW, const float* mean,       \
                                                                   const float* rstd, int rows, int C) {            \
        layernorm_backward_input_bf16_impl<VPL>(dinp, dout, inp, w, dtW, mean, rstd, rows, C);                      \
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

// The warps of a block in the column-sum partial kernels below (their blocks are 256 threads).
#define COLUMN_SUMS_MAX_WARPS 8

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

// Column sums over chunks of rows: partial[chunk][c] = Σ_{r in chunk} x[r, c].
extern "C" __global__ void column_sums_partial(float* partial, const void* x, int dtX, int rows, int cols,
                                               int chunkRows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (c >= cols) return;
    int r0 = chunk * chunkRows;
    int r1 = min(rows, r0 + chunkRows);
    float s = 0.0f;
    for (int r = r0; r < r1; r++) s += ld(x, (size_t)r * cols + c, dtX);
    partial[(size_t)chunk * cols + c] = s;
}

// column_sums_partial for bf16 x with cols % 8 == 0: partial[chunk][c] = Σ of column c over the chunk's rows. A block
// takes 32 vectors of 8 columns (one 16-byte load per lane per row) and one chunk of rows: warp w sums the chunk's rows
// w, w + W, … in order, then warp 0 adds the W warps' sums in warp order. A fixed order (run to run identical), with
// chunks long enough (256 rows) that column_sums_finish adds few partials, and every warp of a block busy.
extern "C" __global__ void column_sums_partial_bf16(float* partial, const void* x, int rows, int cols, int chunkRows) {
    __shared__ float sums[COLUMN_SUMS_MAX_WARPS][32][9];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int vectors = cols / 8;
    int v = blockIdx.x * 32 + lane;
    int r0 = blockIdx.y * chunkRows;
    int r1 = min(rows, r0 + chunkRows);
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (v < vectors) {
#pragma unroll 8
        for (int r = r0 + warp; r < r1; r += warps) {
            float f[8];
            load8(x, (size_t)r * vectors + v, f);
#pragma unroll
            for (int k = 0; k < 8; k++) s[k] += f[k];
        }
    }
#pragma unroll
    for (int k = 0; k < 8; k++) sums[warp][lane][k] = s[k];
    __syncthreads();
    if (warp != 0 || v >= vectors) return;
    for (int w = 1; w < warps; w++) {
#pragma unroll
        for (int k = 0; k < 8; k++) s[k] += sums[w][lane][k];
    }
    float4* out = (float4*)(partial + (size_t)blockIdx.y * cols) + 2 * v;
    out[0] = make_float4(s[0], s[1], s[2], s[3]);
    out[1] = make_float4(s[4], s[5], s[6], s[7]);
}

// out[c] += Σ_chunk partial[chunk][c]. A block takes 32 columns; its warps w = 0..W−1 each sum the chunks k ≡ w
// (mod W) in order, then warp 0 adds the W sums in order: a fixed order for a given block size, with W times the
// parallelism of one thread per column (at 768 columns that was 3 blocks for 256 chunks in sequence).
extern "C" __global__ void column_sums_finish(void* out, int dtOut, const float* partial, int chunks, int cols) {
    __shared__ float sums[32][33];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int c = blockIdx.x * 32 + lane;
    float s = 0.0f;
    if (c < cols) {
        // Unrolled so that eight loads are in flight per lane, not one: the adds stay in chunk order.
#pragma unroll 8
        for (int k = warp; k < chunks; k += warps) s += partial[(size_t)k * cols + c];
    }
    sums[warp][lane] = s;
    __syncthreads();
    if (warp != 0 || c >= cols) return;
    float total = 0.0f;
    for (int w = 0; w < warps; w++) total += sums[w][lane];
    st(out, c, ld(out, c, dtOut) + total, dtOut);
}

// ---- cross-entropy -----------------------------------------------------------------------------------------------

// One block per row: loss = logsumexp(z) − z[target]; dlogits = (softmax − onehot)·gradScale (may alias logits).
extern "C" __global__ void cross_entropy_forward_backward(void* losses, int dtLosses, void* dlogits, int dtDlogits,
                                                          const void* logits, int dtLogits, const int* targets,
                                                          int V, float gradScale, int* err) {
    __shared__ float shared32[32];
    size_t r = blockIdx.x;
    size_t off = r * V;
    int target = targets[r];
    if (target < 0 || target >= V) {
        if (threadIdx.x == 0) report(err, ERR_TARGET_OUT_OF_RANGE);
        return;
    }
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, ld(logits, off + v, dtLogits));
    m = blockMax(m, shared32);
    float s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(ld(logits, off + v, dtLogits) - m);
    s = blockSum(s, shared32);
    float zt = ld(logits, off + target, dtLogits);
    __syncthreads();
    if (threadIdx.x == 0) st(losses, r, m + logf(s) - zt, dtLosses);
    if (dlogits != nullptr) {
        float inv = 1.0f / s;
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            float p = expf(ld(logits, off + v, dtLogits) - m) * inv;
            st(dlogits, off + v, (p - (v == target ? 1.0f : 0.0f)) * gradScale, dtDlogits);
        }
    }
}

// The same for bf16 logits with V % 8 == 0 and V ≤ 57344 (GPT-2's padded 50304): one row per block of 1024 threads,
// held in registers as bf16 (128-bit loads of 8, at most CE_VECS per thread), so the logits are read once and the
// gradient written once, where the kernel above reads them three times.
#define CE_VECS 7

// The two bf16 of a 32-bit word as floats, and two floats rounded into one word: bit operations, so the row stays
// in registers (taking a register's address would move it to local memory).
__device__ __forceinline__ float bf16Low(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16High(unsigned w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ unsigned bf16Pair(float low, float high) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(low))
           | ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(high)) << 16);
}

extern "C" __global__ void __launch_bounds__(1024) cross_entropy_forward_backward_bf16(
        void* losses, int dtLosses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int* targets, int V,
        float gradScale, int* err) {
    __shared__ float shared32[32];
    size_t r = blockIdx.x;
    int target = targets[r];
    if (target < 0 || target >= V) {
        if (threadIdx.x == 0) report(err, ERR_TARGET_OUT_OF_RANGE);
        return;
    }
    const uint4* row = (const uint4*)(logits + r * (size_t)V);
    int vecs = V / 8;
    uint4 x[CE_VECS];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < CE_VECS; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < vecs) {
            x[k] = row[i];
            unsigned w[4] = {x[k].x, x[k].y, x[k].z, x[k].w};
#pragma unroll
            for (int j = 0; j < 4; j++) m = fmaxf(m, fmaxf(bf16Low(w[j]), bf16High(w[j])));
        }
    }
    m = blockMax(m, shared32);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < CE_VECS; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < vecs) {
            unsigned w[4] = {x[k].x, x[k].y, x[k].z, x[k].w};
#pragma unroll
            for (int j = 0; j < 4; j++) s += expf(bf16Low(w[j]) - m) + expf(bf16High(w[j]) - m);
        }
    }
    s = blockSum(s, shared32);
    float zt = __bfloat162float(logits[r * (size_t)V + target]);
    __syncthreads();  // every thread has read the target logit before any overwrites it (dlogits may be logits)
    if (threadIdx.x == 0) st(losses, r, m + logf(s) - zt, dtLosses);
    if (dlogits == nullptr) return;
    float inv = 1.0f / s;
    uint4* out = (uint4*)(dlogits + r * (size_t)V);
#pragma unroll
    for (int k = 0; k < CE_VECS; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < vecs) {
            unsigned w[4] = {x[k].x, x[k].y, x[k].z, x[k].w};
            unsigned g[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int v = 8 * i + 2 * j;
                float p0 = expf(bf16Low(w[j]) - m) * inv - (v == target ? 1.0f : 0.0f);
                float p1 = expf(bf16High(w[j]) - m) * inv - (v + 1 == target ? 1.0f : 0.0f);
                g[j] = bf16Pair(p0 * gradScale, p1 * gradScale);
            }
            out[i] = make_uint4(g[0], g[1], g[2], g[3]);
        }
    }
}

// ---- attention ---------------------------------------------------------------------------------------------------
// Flash-style causal attention with online softmax: no T×T matrix exists anywhere. The forward keeps, per (b, h, t),
// the log-sum-exp of the scaled scores and an fp32 copy of the output row (for D = dO·O in the backward), O(T·C).
// One warp per query row (forward, dq) or key row (dk, dv); lanes own keys (or queries) for the scores and head
// dimensions for the accumulations. Plain fp32 FMAs: correct and simple; tensor-core tiles are the next step.

template <int HS>
__device__ __forceinline__ float dotRow(const void* qkv, int dt, size_t rowOff, const float* vec) {
    float s = 0.0f;
#pragma unroll 8
    for (int d = 0; d < HS; d++) s += ld(qkv, rowOff + d, dt) * vec[d];
    return s;
}

template <int HS>
__device__ void attention_forward_impl(void* out, int dtOut, float* lse, float* ocopy, const void* qkv, int dtQkv,
                                       int B, int T, int NH, float scale) {
    constexpr int PER_LANE = HS / 32;
    extern __shared__ float smem[];
    int warpsPerBlock = blockDim.x >> 5;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* q = smem + warp * HS;
    size_t task = (size_t)blockIdx.x * warpsPerBlock + warp;
    if (task >= (size_t)B * NH * T) return;
    // Consecutive warps take consecutive query rows of one (b, h): their keys are shared in L1/L2.
    int t = (int)(task % T);
    int h = (int)((task / T) % NH);
    int b = (int)(task / ((size_t)T * NH));
    int C = NH * HS, C3 = 3 * C;
    size_t qOff = ((size_t)b * T + t) * C3 + h * HS;
    for (int d = lane; d < HS; d += 32) q[d] = ld(qkv, qOff + d, dtQkv) * scale;
    __syncwarp();
    float mRun = -INFINITY, lRun = 0.0f;
    float acc[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) acc[i] = 0.0f;
    for (int j0 = 0; j0 <= t; j0 += 32) {
        int j = j0 + lane;
        float s = -INFINITY;
        if (j <= t) s = dotRow<HS>(qkv, dtQkv, ((size_t)b * T + j) * C3 + C + h * HS, q);
        float mNew = fmaxf(mRun, warpMax(s));
        float p = j <= t ? expf(s - mNew) : 0.0f;
        float corr = expf(mRun - mNew);
        lRun = lRun * corr + warpSum(p);
#pragma unroll
        for (int i = 0; i < PER_LANE; i++) acc[i] *= corr;
        int last = min(31, t - j0);
        for (int jj = 0; jj <= last; jj++) {
            float pj = __shfl_sync(0xffffffff, p, jj);
            size_t vOff = ((size_t)b * T + j0 + jj) * C3 + 2 * C + h * HS;
#pragma unroll
            for (int i = 0; i < PER_LANE; i++) acc[i] += pj * ld(qkv, vOff + lane + 32 * i, dtQkv);
        }
        mRun = mNew;
    }
    float inv = 1.0f / lRun;
    size_t oOff = ((size_t)b * T + t) * C + h * HS;
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) {
        float o = acc[i] * inv;
        st(out, oOff + lane + 32 * i, o, dtOut);
        ocopy[oOff + lane + 32 * i] = o;
    }
    if (lane == 0) lse[((size_t)b * NH + h) * T + t] = mRun + logf(lRun);
}

// dq for one query row per warp, and D = dO·O for that row (kept for the dk/dv kernel).
template <int HS>
__device__ void attention_backward_dq_impl(void* dqkv, int dtDqkv, float* dsum, const void* dout, int dtDout,
                                           const void* qkv, int dtQkv, const float* lse, const float* ocopy, int B,
                                           int T, int NH, float scale) {
    constexpr int PER_LANE = HS / 32;
    extern __shared__ float smem[];
    int warpsPerBlock = blockDim.x >> 5;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* q = smem + warp * 2 * HS;
    float* dO = q + HS;
    size_t task = (size_t)blockIdx.x * warpsPerBlock + warp;
    if (task >= (size_t)B * NH * T) return;
    int t = (int)(task % T);
    int h = (int)((task / T) % NH);
    int b = (int)(task / ((size_t)T * NH));
    int C = NH * HS, C3 = 3 * C;
    size_t row = (size_t)b * T + t;
    size_t qOff = row * C3 + h * HS;
    size_t oOff = row * C + h * HS;
    float dPart = 0.0f;
    for (int d = lane; d < HS; d += 32) {
        q[d] = ld(qkv, qOff + d, dtQkv) * scale;
        float g = ld(dout, oOff + d, dtDout);
        dO[d] = g;
        dPart += g * ocopy[oOff + d];
    }
    float D = warpSum(dPart);
    __syncwarp();
    size_t statIdx = ((size_t)b * NH + h) * T + t;
    float L = lse[statIdx];
    if (lane == 0) dsum[statIdx] = D;
    float acc[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) acc[i] = 0.0f;
    for (int j0 = 0; j0 <= t; j0 += 32) {
        int j = j0 + lane;
        float ds = 0.0f;
        if (j <= t) {
            size_t kRow = ((size_t)b * T + j) * C3;
            float p = expf(dotRow<HS>(qkv, dtQkv, kRow + C + h * HS, q) - L);
            float dp = dotRow<HS>(qkv, dtQkv, kRow + 2 * C + h * HS, dO);
            ds = p * (dp - D) * scale;
        }
        int last = min(31, t - j0);
        for (int jj = 0; jj <= last; jj++) {
            float dsj = __shfl_sync(0xffffffff, ds, jj);
            size_t kOff = ((size_t)b * T + j0 + jj) * C3 + C + h * HS;
#pragma unroll
            for (int i = 0; i < PER_LANE; i++) acc[i] += dsj * ld(qkv, kOff + lane + 32 * i, dtQkv);
        }
    }
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) {
        size_t idx = qOff + lane + 32 * i;
        st(dqkv, idx, ld(dqkv, idx, dtDqkv) + acc[i], dtDqkv);
    }
}

// dk and dv for one key row per warp: lanes own query rows i ≥ j.
template <int HS>
__device__ void attention_backward_dkdv_impl(void* dqkv, int dtDqkv, const float* dsum, const void* dout,
                                             int dtDout, const void* qkv, int dtQkv, const float* lse, int B, int T,
                                             int NH, float scale) {
    constexpr int PER_LANE = HS / 32;
    extern __shared__ float smem[];
    int warpsPerBlock = blockDim.x >> 5;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* k = smem + warp * 2 * HS;
    float* v = k + HS;
    size_t task = (size_t)blockIdx.x * warpsPerBlock + warp;
    if (task >= (size_t)B * NH * T) return;
    int j = (int)(task % T);
    int h = (int)((task / T) % NH);
    int b = (int)(task / ((size_t)T * NH));
    int C = NH * HS, C3 = 3 * C;
    size_t kRow = ((size_t)b * T + j) * C3;
    for (int d = lane; d < HS; d += 32) {
        k[d] = ld(qkv, kRow + C + h * HS + d, dtQkv);
        v[d] = ld(qkv, kRow + 2 * C + h * HS + d, dtQkv);
    }
    __syncwarp();
    float dk[PER_LANE], dv[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) dk[i] = dv[i] = 0.0f;
    size_t statBase = ((size_t)b * NH + h) * T;
    for (int i0 = j; i0 < T; i0 += 32) {
        int i = i0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (i < T) {
            size_t qRow = ((size_t)b * T + i) * C3 + h * HS;
            size_t oRow = ((size_t)b * T + i) * C + h * HS;
            float s = dotRow<HS>(qkv, dtQkv, qRow, k) * scale;
            p = expf(s - lse[statBase + i]);
            float dp = dotRow<HS>(dout, dtDout, oRow, v);
            ds = p * (dp - dsum[statBase + i]) * scale;
        }
        int last = min(31, T - 1 - i0);
        for (int ii = 0; ii <= last; ii++) {
            float pi = __shfl_sync(0xffffffff, p, ii);
            float dsi = __shfl_sync(0xffffffff, ds, ii);
            size_t qOff = ((size_t)b * T + i0 + ii) * C3 + h * HS;
            size_t oOff = ((size_t)b * T + i0 + ii) * C + h * HS;
#pragma unroll
            for (int e = 0; e < PER_LANE; e++) {
                dk[e] += dsi * ld(qkv, qOff + lane + 32 * e, dtQkv);
                dv[e] += pi * ld(dout, oOff + lane + 32 * e, dtDout);
            }
        }
    }
#pragma unroll
    for (int e = 0; e < PER_LANE; e++) {
        size_t ik = kRow + C + h * HS + lane + 32 * e;
        size_t iv = kRow + 2 * C + h * HS + lane + 32 * e;
        st(dqkv, ik, ld(dqkv, ik, dtDqkv) + dk[e], dtDqkv);
        st(dqkv, iv, ld(dqkv, iv, dtDqkv) + dv[e], dtDqkv);
    }
}

#define ATTENTION_KERNELS(HS)                                                                                        \
    extern "C" __global__ void attention_forward_##HS(void* out, int dtOut, float* lse, float* ocopy,               \
                                                      const void* qkv, int dtQkv, int B, int T, int NH,             \
                                                      float scale) {                                                \
        attention_forward_impl<HS>(out, dtOut, lse, ocopy, qkv, dtQkv, B, T, NH, scale);                            \
    }                                                                                                               \
    extern "C" __global__ void attention_backward_dq_##HS(void* dqkv, int dtDqkv, float* dsum, const void* dout,    \
                                                          int dtDout, const void* qkv, int dtQkv, const float* lse, \
                                                          const float* ocopy, int B, int T, int NH, float scale) {  \
        attention_backward_dq_impl<HS>(dqkv, dtDqkv, dsum, dout, dtDout, qkv, dtQkv, lse, ocopy, B, T, NH, scale); \
    }                                                                                                               \
    extern "C" __global__ void attention_backward_dkdv_##HS(void* dqkv, int dtDqkv, const float* dsum,              \
                                                            const void* dout, int dtDout, const void* qkv,          \
                                                            int dtQkv, const float* lse, int B, int T, int NH,      \
                                                            float scale) {                                          \
        attention_backward_dkdv_impl<HS>(dqkv, dtDqkv, dsum, dout, dtDout, qkv, dtQkv, lse, B, T, NH, scale);      \
    }

ATTENTION_KERNELS(32)
ATTENTION_KERNELS(64)
ATTENTION_KERNELS(96)
ATTENTION_KERNELS(128)

// ---- incremental decoding (KV cache) -------------------------------------------------------------------------------

// Rows (b, j) of qkv (B·n × 3C) give their k and v to cache position *position + j of sequence b (caches
// B × maxT × C, n ≤ maxT). The position is read on the device; rows that would land outside the cache write nothing.
extern "C" __global__ void kv_cache_store(void* keys, void* values, int dtCache, const void* qkv, int dtQkv, int B,
                                          int n, int C, int maxT, const int* position, int* err) {
    int first = *position;
    if (first < 0 || first > maxT - n) {
        if (blockIdx.x == 0 && threadIdx.x == 0) report(err, ERR_POSITION_OUT_OF_RANGE);
        return;
    }
    size_t total = (size_t)B * n * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C;
        int c = (int)(i % C);
        size_t b = row / n;
        int j = (int)(row % n);
        size_t src = row * 3 * C;
        size_t dst = (b * maxT + first + j) * C + c;
        st(keys, dst, ld(qkv, src + C + c, dtQkv), dtCache);
        st(values, dst, ld(qkv, src + 2 * C + c, dtQkv), dtCache);
    }
}

#define DECODE_MAX_HS 128
#define DECODE_WARPS 8

// One new query per sequence against its cached keys and values 0..position: a block per (b, h), each warp an online
// softmax over the keys t ≡ warp (mod warps), lane d holding output channels d, d + 32, …; the warps' partial results
// are then combined in warp order, so the sum runs in a fixed order. out is B × C, qkv B × 3C (only q is read). The
// position is read on the device (the grid does not depend on it); one outside the cache writes nothing.
extern "C" __global__ void __launch_bounds__(32 * DECODE_WARPS) attention_decode(
    void* out, int dtOut, const void* qkv, int dtQkv, const void* keys, const void* values, int dtCache, int NH,
    int HS, int maxT, const int* positionOnDevice, float scale, int* err) {
    int position = *positionOnDevice;
    if (position < 0 || position >= maxT) {
        if (blockIdx.x == 0 && threadIdx.x == 0) report(err, ERR_POSITION_OUT_OF_RANGE);
        return;
    }
    __shared__ float partMax[DECODE_WARPS], partSum[DECODE_WARPS], partAcc[DECODE_WARPS][DECODE_MAX_HS];
    int b = blockIdx.x / NH, h = blockIdx.x % NH;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int C = NH * HS, per = (HS + 31) / 32;
    float q[DECODE_MAX_HS / 32], acc[DECODE_MAX_HS / 32];
    for (int e = 0; e < per; e++) {
        int d = lane + 32 * e;
        q[e] = d < HS ? ld(qkv, (size_t)b * 3 * C + h * HS + d, dtQkv) : 0.0f;
        acc[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    size_t base = (size_t)b * maxT * C + h * HS;
    for (int t = warp; t <= position; t += DECODE_WARPS) {
        size_t row = base + (size_t)t * C;
        float s = 0.0f;
        for (int e = 0; e < per; e++) {
            if (lane + 32 * e < HS) s += q[e] * ld(keys, row + lane + 32 * e, dtCache);
        }
        s = warpSum(s) * scale;
        float mNew = fmaxf(m, s);
        float keep = expf(m - mNew), w = expf(s - mNew);
        l = l * keep + w;
        for (int e = 0; e < per; e++) {
            if (lane + 32 * e < HS) acc[e] = acc[e] * keep + w * ld(values, row + lane + 32 * e, dtCache);
        }
        m = mNew;
    }
    if (lane == 0) {
        partMax[warp] = m;
        partSum[warp] = l;
    }
    for (int e = 0; e < per; e++) {
        if (lane + 32 * e < HS) partAcc[warp][lane + 32 * e] = acc[e];
    }
    __syncthreads();
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float mAll = -INFINITY;
        for (int w = 0; w < DECODE_WARPS; w++) mAll = fmaxf(mAll, partMax[w]);
        float sum = 0.0f, o = 0.0f;
        for (int w = 0; w < DECODE_WARPS; w++) {
            if (partMax[w] == -INFINITY) continue;  // a warp that saw no key (position + 1 < warps)
            float f = expf(partMax[w] - mAll);
            sum += partSum[w] * f;
            o += partAcc[w][d] * f;
        }
        st(out, (size_t)b * C + h * HS + d, o / sum, dtOut);
    }
}

// acc[0] += scale * Σ x: one block, each thread a fixed strided subset in order, then a fixed tree, so a step's loss
// is the same bit for bit from run to run (an atomic per block would add in arrival order).
extern "C" __global__ void add_scaled_sum(double* acc, const void* x, int dt, long long n, double scale) {
    __shared__ double shared[32];
    double s = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += ldd(x, i, dt);
    s = blockSum(s, shared);
    if (threadIdx.x == 0) acc[0] += scale * s;
}

// ---- optimizer (one launch for all parameters) ---------------------------------------------------------------------

// acc[0] += Σ partial: one warp, each lane a fixed strided subset in order, then a fixed butterfly.
extern "C" __global__ void sum_squares_finish(double* acc, const double* partial, int count) {
    int lane = threadIdx.x;
    double t = 0.0;
    for (int i = lane; i < count; i += 32) t += partial[i];
    t = warpSum(t);
    if (lane == 0) acc[0] += t;
}

// The tensors of one call are cut into chunks of MT_CHUNK elements, numbered across tensors in list order
// (chunkStart[t] is tensor t's first chunk); block b takes chunks b, b + gridDim.x, ... The grid is fixed per list, so
// the sums below add the same values in the same order every step.

#define MT_CHUNK 4096

struct MtTensor {  // sum of squares: one tensor read
    const void* x;
    long long n;
    int dt;
    int pad;
};

struct MtAdamW {  // AdamW: one parameter, its gradient, moments and (when it has one) its bf16 GEMM copy
    void* param;
    const void* grad;
    void* m;
    void* v;
    __nv_bfloat16* copy;
    long long n;
    int dtParam;
    int dtGrad;
    int dtM;
    int dtV;
    double weightDecay;
    int slot;  // which bias correction (bc1/bc2 pair) the parameter's group uses
    int pad;
};

// The tensor holding global chunk c: the last t with chunkStart[t] <= c.
__device__ __forceinline__ int mtTensorOf(const long long* chunkStart, int count, long long c) {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (chunkStart[mid] <= c) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// partial[blockIdx.x] = Σ x² over the block's chunks; sum_squares_finish adds the partials in order.
extern "C" __global__ void sum_squares_multi(double* partial, const MtTensor* tensors, const long long* chunkStart,
                                             int count, long long chunks) {
    __shared__ double shared[32];
    double s = 0.0;
    for (long long c = blockIdx.x; c < chunks; c += gridDim.x) {
        int t = mtTensorOf(chunkStart, count, c);
        MtTensor d = tensors[t];
        long long begin = (c - chunkStart[t]) * MT_CHUNK;
        long long end = begin + MT_CHUNK < d.n ? begin + MT_CHUNK : d.n;
        for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
            double v = ldd(d.x, i, d.dt);
            s += v * v;
        }
    }
    s = blockSum(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Every listed tensor zeroed: a step's gradients in one launch (a memset is one launch per tensor).
extern "C" __global__ void zero_multi(const MtTensor* tensors, const long long* chunkStart, int count,
                                      long long chunks) {
    for (long long c = blockIdx.x; c < chunks; c += gridDim.x) {
        int t = mtTensorOf(chunkStart, count, c);
        MtTensor d = tensors[t];
        long long begin = (c - chunkStart[t]) * MT_CHUNK;
        long long end = begin + MT_CHUNK < d.n ? begin + MT_CHUNK : d.n;
        for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) st((void*)d.x, i, 0.0f, d.dt);
    }
}

// One AdamW update of fp32 state in place, in the arithmetic of adamw_multi's general loop: fp64, the moments rounded
// to fp32 as they are stored before the bias corrections read them.
__device__ __forceinline__ void adamwF32(float& p, float grad, float& m, float& v, double coef, double beta1,
                                         double beta2, double bc1, double bc2, double decay, double lr, double eps) {
    double g = (double)grad * coef;
    m = (float)(beta1 * (double)m + (1.0 - beta1) * g);
    v = (float)(beta2 * (double)v + (1.0 - beta2) * g * g);
    double mHat = (double)m / bc1;
    double vHat = (double)v / bc2;
    p = (float)((double)p * decay - lr * mHat / (sqrt(vHat) + eps));
}

// The adamw kernel's arithmetic on every listed parameter; the bf16 copy (the GEMM operand) is written from the
// stored fp32 value, so it equals what a cast of the new weight would give.
extern "C" __global__ void adamw_multi(const MtAdamW* tensors, const long long* chunkStart, int count,
                                       long long chunks, const double* gradNormSquared, double lr, double beta1,
                                       double beta2, double eps, double clip, double bc1Slot0, double bc2Slot0,
                                       double bc1Slot1, double bc2Slot1) {
    double coef = 1.0;
    if (clip > 0.0) {
        double norm = sqrt(gradNormSquared[0]);
        coef = fmin(1.0, clip / (norm + 1e-6));
    }
    for (long long c = blockIdx.x; c < chunks; c += gridDim.x) {
        int t = mtTensorOf(chunkStart, count, c);
        MtAdamW d = tensors[t];
        double bc1 = d.slot == 0 ? bc1Slot0 : bc1Slot1;
        double bc2 = d.slot == 0 ? bc2Slot0 : bc2Slot1;
        double decay = 1.0 - lr * d.weightDecay;
        long long begin = (c - chunkStart[t]) * MT_CHUNK;
        long long end = begin + MT_CHUNK < d.n ? begin + MT_CHUNK : d.n;
        if (d.dtParam == DT_F32 && d.dtGrad == DT_F32 && d.dtM == DT_F32 && d.dtV == DT_F32) {
            // fp32 state (every GPU run): four elements per 16-byte access; chunks start at multiples of MT_CHUNK,
            // so only a tensor's last chunk can leave a tail of 1–3, done one by one.
            long long end4 = begin + ((end - begin) & ~3LL);
            for (long long i = begin + 4 * threadIdx.x; i < end4; i += 4 * blockDim.x) {
                float4 p = *(float4*)((float*)d.param + i), g = *(const float4*)((const float*)d.grad + i);
                float4 m = *(float4*)((float*)d.m + i), v = *(float4*)((float*)d.v + i);
                adamwF32(p.x, g.x, m.x, v.x, coef, beta1, beta2, bc1, bc2, decay, lr, eps);
                adamwF32(p.y, g.y, m.y, v.y, coef, beta1, beta2, bc1, bc2, decay, lr, eps);
                adamwF32(p.z, g.z, m.z, v.z, coef, beta1, beta2, bc1, bc2, decay, lr, eps);
                adamwF32(p.w, g.w, m.w, v.w, coef, beta1, beta2, bc1, bc2, decay, lr, eps);
                *(float4*)((float*)d.param + i) = p;
                *(float4*)((float*)d.m + i) = m;
                *(float4*)((float*)d.v + i) = v;
                if (d.copy != nullptr) {
                    __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y), hi = __floats2bfloat162_rn(p.z, p.w);
                    uint2 packed;
                    packed.x = *(unsigned int*)&lo;
                    packed.y = *(unsigned int*)&hi;
                    *(uint2*)(d.copy + i) = packed;
                }
            }
            for (long long i = end4 + threadIdx.x; i < end; i += blockDim.x) {
                float p = ((float*)d.param)[i], m = ((float*)d.m)[i], v = ((float*)d.v)[i];
                adamwF32(p, ((const float*)d.grad)[i], m, v, coef, beta1, beta2, bc1, bc2, decay, lr, eps);
                ((float*)d.param)[i] = p;
                ((float*)d.m)[i] = m;
                ((float*)d.v)[i] = v;
                if (d.copy != nullptr) d.copy[i] = __float2bfloat16_rn(p);
            }
            continue;
        }
        for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
            double g = ldd(d.grad, i, d.dtGrad) * coef;
            std_(d.m, i, beta1 * ldd(d.m, i, d.dtM) + (1.0 - beta1) * g, d.dtM);
            std_(d.v, i, beta2 * ldd(d.v, i, d.dtV) + (1.0 - beta2) * g * g, d.dtV);
            double mHat = ldd(d.m, i, d.dtM) / bc1;
            double vHat = ldd(d.v, i, d.dtV) / bc2;
            std_(d.param, i, ldd(d.param, i, d.dtParam) * decay - lr * mHat / (sqrt(vHat) + eps), d.dtParam);
            if (d.copy != nullptr) d.copy[i] = __float2bfloat16_rn(ld(d.param, i, d.dtParam));
        }
    }
}

// ---- N:M masks ---------------------------------------------------------------------------------------------------
// Selection rule of NmMasks.topN: the N largest |w| of a group, equal magnitudes keep the lower index. An entry is
// kept iff fewer than N entries beat it, where k beats j if |w_k| > |w_j|, or equal and k < j. Magnitudes compared in
// fp64, so the result equals the CPU's for any input it is given.

__device__ __forceinline__ bool keptInGroup(const void* w, int dt, size_t start, size_t stride, int j, int N, int M) {
    double mj = fabs(ldd(w, start + (size_t)j * stride, dt));
    int beaten = 0;
    for (int k = 0; k < M; k++) {
        if (k == j) continue;
        double mk = fabs(ldd(w, start + (size_t)k * stride, dt));
        if (mk > mj || (mk == mj && k < j)) beaten++;
    }
    return beaten < N;
}

// The masks as the device holds them (CudaSparseLinear, PackedMasks). Row mask: per row, each kept entry's offset
// within its aligned group of M along the row, one byte each, increasing within a group (rows × cols/M·N bytes). The
// row mask keeps exactly N of every M, so kept entry j of a row lies in group j / N, at column (j / N)·M + offset.
// Column mask: one bit per weight, packed along the rows (d_out): bit r % 32 of word (r / 32)·cols + c is entry (r, c),
// so the words of consecutive columns are adjacent and threads over c read and write them coalesced.

__device__ __forceinline__ int keptColumn(const uint8_t* kept, size_t i, int k, int N, int M) {
    return (int)(i % (size_t)k) / N * M + kept[i];
}

__device__ __forceinline__ size_t maskWord(int r, int cols, int c) {
    return (size_t)(r >> 5) * cols + c;
}

__device__ __forceinline__ bool maskBit(const uint32_t* mask, int r, int cols, int c) {
    return (mask[maskWord(r, cols, c)] >> (r & 31)) & 1u;
}

// Row mask: per row, the offsets of the kept entries of each group in increasing order. One thread per group.
extern "C" __global__ void nm_row_prune(uint8_t* kept, const void* w, int dt, int rows, int cols, int N, int M) {
    size_t groupsPerRow = cols / M;
    size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (g >= (size_t)rows * groupsPerRow) return;
    size_t r = g / groupsPerRow;
    int c0 = (int)(g % groupsPerRow) * M;
    size_t out = r * (groupsPerRow * N) + (size_t)(c0 / M) * N;
    int k = 0;
    for (int j = 0; j < M; j++) {
        if (keptInGroup(w, dt, r * cols + c0, 1, j, N, M)) kept[out + k++] = (uint8_t)j;
    }
}

// Column mask (bits as above, 1 = kept): groups of M consecutive rows within each column; zeros are never kept. One
// thread per mask word (32 rows of one column, c fastest), each word written whole: bits past the last row are 0.
extern "C" __global__ void nm_column_prune(uint32_t* mask, const void* w, int dt, int rows, int cols, int N, int M) {
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (t >= (size_t)((rows + 31) / 32) * cols) return;
    int c = (int)(t % cols);
    int r0 = (int)(t / cols) * 32;
    uint32_t bits = 0;
    for (int b = 0; b < 32 && r0 + b < rows; b++) {
        int r = r0 + b;
        int g0 = r - r % M;
        bool keep = keptInGroup(w, dt, (size_t)g0 * cols + c, cols, r - g0, N, M)
                && ldd(w, (size_t)r * cols + c, dt) != 0.0;
        if (keep) bits |= 1u << b;
    }
    mask[t] = bits;
}

// Sets the column mask's bit at every row-mask position (the mask is zeroed first): the backward support when there is
// no double pruning. Integer atomics only (bits of one word come from up to 32 rows).
extern "C" __global__ void mark_row_kept(uint32_t* mask, const uint8_t* kept, int rows, int cols, int k, int N,
                                         int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    int r = (int)(i / k);
    atomicOr(&mask[maskWord(r, cols, keptColumn(kept, i, k, N, M))], 1u << (r & 31));
}

// values[r, j] = dense[r, column of kept entry (r, j)].
extern "C" __global__ void gather_kept(void* values, int dtValues, const void* dense, int dtDense,
                                       const uint8_t* kept, int rows, int cols, int k, int N, int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    size_t r = i / k;
    std_(values, i, ldd(dense, r * cols + keptColumn(kept, i, k, N, M), dtDense), dtValues);
}

// dvalues[r, j] += dense[r, column of kept entry (r, j)]: the row mask's gather of a dense weight gradient
// (docs/method.md: ∇W).
extern "C" __global__ void gather_kept_add(void* dvalues, int dtValues, const void* dense, int dtDense,
                                           const uint8_t* kept, int rows, int cols, int k, int N, int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    size_t r = i / k;
    st(dvalues, i, ld(dvalues, i, dtValues) + ld(dense, r * cols + keptColumn(kept, i, k, N, M), dtDense), dtValues);
}

__device__ __forceinline__ float inGroupOfFour(float4 d, int offset) {
    return offset == 0 ? d.x : offset == 1 ? d.y : offset == 2 ? d.z : d.w;
}

// gather_kept_add for fp32 at 2:4, one group of four columns a thread: one 16-byte load of the dense gradient, the
// group's two kept offsets as one 2-byte load, its two values as one 8-byte load and store; no index divisions.
extern "C" __global__ void gather_kept_add_f32_2of4(float2* dvalues, const float4* dense, const uint16_t* kept,
                                                    size_t groups) {
    size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (g >= groups) return;
    float4 d = dense[g];
    uint16_t offsets = kept[g];
    float2 v = dvalues[g];
    v.x += inGroupOfFour(d, offsets & 0xff);
    v.y += inGroupOfFour(d, offsets >> 8);
    dvalues[g] = v;
}

// dense[r, c] = values[r, j] at every kept entry (r, j) of column c (dense zeroed first): W^R, or with transpose = 1
// its transpose (cols × rows), keeping only entries whose column-mask bit is set when mask is not null: (W^{R,C})ᵀ.
extern "C" __global__ void scatter_kept(void* dense, int dtDense, const void* values, int dtValues,
                                        const uint8_t* kept, const uint32_t* mask, int rows, int cols, int k, int N,
                                        int M, int transpose) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    int r = (int)(i / k);
    int c = keptColumn(kept, i, k, N, M);
    if (mask != nullptr && !maskBit(mask, r, cols, c)) return;
    size_t at = transpose ? (size_t)c * rows + r : (size_t)r * cols + c;
    std_(dense, at, ldd(values, i, dtValues), dtDense);
}

// The kept values written straight into the value region of cuSPARSELt's compressed 2:4 buffer: the kept entries of
// the row-major operand in row-major order, ascending within each group (GPU_LIMITS.md §3; proven byte for byte
// against a fresh compression by CompressedLayoutTest on the shipped library version).
extern "C" __global__ void write_compressed_values(__nv_bfloat16* compressed, const void* values, int dtValues,
                                                   size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        compressed[i] = __float2bfloat16_rn(ld(values, i, dtValues));
    }
}

// The backward operand (W^{R,C})ᵀ, dIn × dOut, in place between column-mask refreshes (ADR 004). The mask keeps at most
// 2 of every aligned 4 along dOut (2:4 and 1:2 patterns; fewer where W^R was zero at the refresh). Each group's slots:
// the mask's positions, padded with its lowest other positions to exactly 2 (their values stay 0), so that compressing
// the support (ones at the slots) fixes the metadata until the next refresh. One thread per (column c of W, group g of
// 4 rows); c varies fastest so the mask reads coalesce. A group's 4 bits lie in one mask word (4g % 32 is at most 28).
// A group keeping more than 2 is reported, never compressed wrong.
__device__ __forceinline__ int transposedSlots(const uint32_t* columnMask, int dIn, int c, int g, bool slot[4],
                                               bool masked[4]) {
    uint32_t bits = columnMask[maskWord(4 * g, dIn, c)] >> ((4 * g) & 31);
    int kept = 0;
    for (int j = 0; j < 4; j++) {
        masked[j] = (bits >> j) & 1u;
        kept += masked[j];
    }
    int pad = 2 - kept;
    for (int j = 0; j < 4; j++) {
        slot[j] = masked[j] || (pad > 0 && pad-- > 0);
    }
    return kept;
}

extern "C" __global__ void column_mask_support_transposed(__nv_bfloat16* support, const uint32_t* columnMask,
                                                          int dOut, int dIn, int* err) {
    size_t groups = (size_t)(dOut / 4) * dIn;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < groups; t += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(t % dIn);
        int g = (int)(t / dIn);
        bool slot[4], masked[4];
        if (transposedSlots(columnMask, dIn, c, g, slot, masked) > 2) report(err, ERR_COLUMN_MASK_OVER_TWO_OF_FOUR);
        for (int j = 0; j < 4; j++) {
            support[(size_t)c * dOut + 4 * g + j] = __float2bfloat16_rn(slot[j] ? 1.0f : 0.0f);
        }
    }
}

__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// The values of (W^{R,C})ᵀ straight into its compressed value region (row c holds its dOut / 2 slots in increasing r),
// once the support above is compressed: W^R[r][c] at the mask's positions, 0 at the padding. A block takes 128 rows r
// × 32 columns c of W^R: the rows' kept values (16 a row at 2:4, contiguous) are read coalesced and placed into a
// shared tile transposed, (c, r), zero where W^R is; then each (c, group g of 4 rows) reads its four values as one
// 16-byte load and writes its two slots as one 32-bit word, g fastest (a row c of the output is contiguous). Grid
// (⌈dIn/32⌉, ⌈dOut/128⌉), 256 threads; the row mask is N:M with M = 2N (2:4 or 1:2: half of every row kept, so the
// 16 kept values of a row that fall in 32 columns are contiguous). Each thread issues its 8 loads of kept values (and
// their offsets) at once, before zeroing its share of the tile, so that their latencies overlap (with one load after
// another the kernel ran at a quarter of its memory floor: 5.1 ms of 191 calls at 1558M, floor ≈ 1.2).
#define TRANSPOSED_THREADS 256
#define TRANSPOSED_LOADS (128 * 16 / TRANSPOSED_THREADS)

extern "C" __global__ void __launch_bounds__(TRANSPOSED_THREADS) write_compressed_transposed_values(
    __nv_bfloat16* compressed, const void* values, int dtValues, const uint8_t* rowKept, const uint32_t* columnMask,
    int dOut, int dIn, int N, int M) {
    __shared__ __align__(16) float tile[32][132];
    int c0 = blockIdx.x * 32;
    int r0 = blockIdx.y * 128;
    int k = dIn / 2;
    float value[TRANSPOSED_LOADS];
    int column[TRANSPOSED_LOADS];
#pragma unroll
    for (int u = 0; u < TRANSPOSED_LOADS; u++) {
        int i = threadIdx.x + u * TRANSPOSED_THREADS;
        int r = r0 + i / 16;
        int j = c0 / 2 + i % 16;  // the kept index in row r: those of columns c0 onwards
        column[u] = -1;
        if (r < dOut && j < k) {
            size_t at = (size_t)r * k + j;
            column[u] = keptColumn(rowKept, at, k, N, M) - c0;
            value[u] = ld(values, at, dtValues);
        }
    }
    for (int i = threadIdx.x; i < 32 * 132; i += TRANSPOSED_THREADS) (&tile[0][0])[i] = 0.0f;
    __syncthreads();
#pragma unroll
    for (int u = 0; u < TRANSPOSED_LOADS; u++) {
        if (column[u] >= 0) tile[column[u]][(threadIdx.x + u * TRANSPOSED_THREADS) / 16] = value[u];
    }
    __syncthreads();
    int lane = threadIdx.x & 31;
    int groups = dOut / 4;
    uint32_t* words = reinterpret_cast<uint32_t*>(compressed);
    for (int y = threadIdx.x >> 5; y < 32; y += blockDim.x >> 5) {
        int c = c0 + y;
        int g = blockIdx.y * 32 + lane;
        if (c >= dIn || g >= groups) continue;
        bool slot[4], masked[4];
        transposedSlots(columnMask, dIn, c, g, slot, masked);
        float4 q = *reinterpret_cast<const float4*>(&tile[y][4 * lane]);
        float w[4] = {q.x, q.y, q.z, q.w};
        float v[2] = {0.0f, 0.0f};
        int s = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (slot[j] && s < 2) {
                if (masked[j]) v[s] = w[j];
                s++;
            }
        }
        words[(size_t)c * groups + g] = packBf16(v[0], v[1]);
    }
}

// ---- the inference form: one 2:4 product over [W^R; Aᵀ], one accumulate (docs/method.md) ---------------------------

// The adapter's rows of the stacked operand (dense bf16, zeroed first; `stacked` points at row dOut): stacked[q, i] =
// A[i, q] for A dIn × r row-major. One thread per (q, group of 4 along i); a group keeping more than 2 nonzeros is
// counted into *overTwo: such an A is not 2:4 along d_in, so the operand is never compressed and the forward runs
// unfused.
extern "C" __global__ void stack_transposed_adapter(__nv_bfloat16* stacked, const void* a, int dtA, int dIn, int r,
                                                    int* overTwo) {
    size_t groups = dIn / 4;
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (t >= (size_t)r * groups) return;
    int q = (int)(t / groups);
    int i0 = (int)(t % groups) * 4;
    int nonzero = 0;
    for (int j = 0; j < 4; j++) {
        __nv_bfloat16 v = __float2bfloat16_rn(ld(a, (size_t)(i0 + j) * r + q, dtA));
        stacked[(size_t)q * dIn + i0 + j] = v;
        if (__bfloat162float(v) != 0.0f) nonzero++;
    }
    if (nonzero > 2) atomicAdd(overTwo, 1);
}

// out[row, j] = Y[row, j] + Σ_q Y[row, dOut + q]·B[q, j] + bias[j] (bias may be null), fp32, rounded once: Y is the
// stacked product [X·(W^R)ᵀ | X·A | 0] (rows × (dOut + rPad) bf16, rPad a multiple of 32, dOut of 8), B is r × dOut
// bf16. A block of 256 threads writes a tile of 64 rows × 128 columns, each thread 4 rows × 8 columns (one 16-byte
// vector of Y and of out per row). The rank runs in chunks of 32, each chunk's B (32 × 128) and X·A (64 × 32) staged in
// shared memory: B is read once per tile, not once per row, and every shared value loaded serves 4 or 8 FMAs. Past r
// B is taken as 0 (the padding's X·A is 0 too).
#define LR_TILE_ROWS 64
#define LR_TILE_COLS 128
#define LR_RANK_CHUNK 32

extern "C" __global__ void __launch_bounds__(256) linear_low_rank_epilogue(void* out, int dtOut,
                                                                           const __nv_bfloat16* y, const void* b,
                                                                           int dtB, const void* bias, int dtBias,
                                                                           int rows, int dOut, int r, int rPad) {
    __shared__ __align__(16) float sB[LR_RANK_CHUNK][LR_TILE_COLS];
    // Rows padded by 4: the staging stores spread over 8 banks, and each row stays 16-byte aligned for float4 reads.
    __shared__ __align__(16) float sXa[LR_RANK_CHUNK][LR_TILE_ROWS + 4];
    int tid = threadIdx.x;
    int colGroup = tid % 16;
    int rowGroup = tid / 16;
    int col0 = blockIdx.x * LR_TILE_COLS;
    int row0 = blockIdx.y * LR_TILE_ROWS;
    size_t ldy = (size_t)dOut + rPad;
    float acc[4][8];
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int k = 0; k < 8; k++) acc[i][k] = 0.0f;
    }
    for (int q0 = 0; q0 < rPad; q0 += LR_RANK_CHUNK) {
        for (int e = tid; e < LR_RANK_CHUNK * LR_TILE_COLS; e += blockDim.x) {
            int qq = e / LR_TILE_COLS, c = e % LR_TILE_COLS;
            int q = q0 + qq, j = col0 + c;
            sB[qq][c] = q < r && j < dOut ? ld(b, (size_t)q * dOut + j, dtB) : 0.0f;
        }
        for (int e = tid; e < LR_TILE_ROWS * LR_RANK_CHUNK; e += blockDim.x) {
            int rr = e / LR_RANK_CHUNK, qq = e % LR_RANK_CHUNK;
            int row = row0 + rr;
            sXa[qq][rr] = row < rows ? __bfloat162float(y[(size_t)row * ldy + dOut + q0 + qq]) : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int qq = 0; qq < LR_RANK_CHUNK; qq++) {
            float4 xa = *(const float4*)&sXa[qq][rowGroup * 4];
            float4 b0 = *(const float4*)&sB[qq][colGroup * 8];
            float4 b1 = *(const float4*)&sB[qq][colGroup * 8 + 4];
            float xs[4] = {xa.x, xa.y, xa.z, xa.w};
            float bs[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
#pragma unroll
                for (int k = 0; k < 8; k++) acc[i][k] = fmaf(xs[i], bs[k], acc[i][k]);
            }
        }
        __syncthreads();
    }
    int j0 = col0 + colGroup * 8;
    if (j0 >= dOut) return;
    float add[8];
#pragma unroll
    for (int k = 0; k < 8; k++) add[k] = bias != nullptr ? ld(bias, j0 + k, dtBias) : 0.0f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int row = row0 + rowGroup * 4 + i;
        if (row >= rows) break;
        float v[8];
        load8(y + (size_t)row * ldy, j0 / 8, v);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] += acc[i][k] + add[k];
        if (dtOut == DT_BF16) {
            store8((__nv_bfloat16*)out + (size_t)row * dOut, j0 / 8, v);
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) st(out, (size_t)row * dOut + j0 + k, v[k], dtOut);
        }
    }
}

// ---- attention on the tensor cores (head size 64) ------------------------------------------------------------------
// FlashAttention-2-style tiles on mma.sync m16n8k16 (bf16 in, fp32 accumulate): blocks of 64 query (or key) rows, 4
// warps of 16 rows each, K/V (or Q/dO) tiles of 64 rows staged in shared memory as bf16 (rows padded to 72 elements so
// the fragment loads hit 32 distinct banks). Same state as the simple kernels (log-sum-exp, D, fp32 output copy), and
// no atomics: dq is one kernel over query tiles, dk/dv another over key tiles, each recomputing the probabilities.

#define TC_HS 64
#define TC_ROWS 64
#define TC_PAD 72

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16* p) {
    return *reinterpret_cast<const uint32_t*>(p);
}

__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Stages rows [row0, row0 + 64) of one 64-wide column slice of a row-major tensor (row stride `stride`) into shared
// memory as bf16, row-major (tile[r][d]) or transposed (tile[d][r]); rows at or past `rows` become zeros. Each thread
// moves 8 consecutive elements: one 16-byte load for bf16 storage, two for fp32.
__device__ __forceinline__ void stageTile(__nv_bfloat16* tile, const void* src, int dt, size_t base, int stride,
                                          int row0, int rows, bool transpose) {
    for (int i = threadIdx.x; i < TC_ROWS * TC_HS / 8; i += blockDim.x) {
        int r = i >> 3, c8 = (i & 7) * 8;
        uint4 raw = make_uint4(0, 0, 0, 0);
        __nv_bfloat16* v = reinterpret_cast<__nv_bfloat16*>(&raw);
        if (row0 + r < rows) {
            size_t off = base + (size_t)(row0 + r) * stride + c8;
            if (dt == DT_BF16 && (off & 7) == 0) {
                raw = *reinterpret_cast<const uint4*>(reinterpret_cast<const __nv_bfloat16*>(src) + off);
            } else if (dt == DT_F32 && (off & 3) == 0) {
                float4 a = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(src) + off);
                float4 b = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(src) + off + 4);
                uint32_t* w = reinterpret_cast<uint32_t*>(&raw);
                w[0] = packBf16(a.x, a.y);
                w[1] = packBf16(a.z, a.w);
                w[2] = packBf16(b.x, b.y);
                w[3] = packBf16(b.z, b.w);
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) v[j] = __float2bfloat16_rn(ld(src, off + j, dt));
            }
        }
        if (!transpose) {
            *reinterpret_cast<uint4*>(tile + r * TC_PAD + c8) = raw;
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) tile[(c8 + j) * TC_PAD + r] = v[j];
        }
    }
}

// A fragments of a 16×64 row-major bf16 tile (rows 16·warp..) for the four k-steps of 16.
__device__ __forceinline__ void loadA(uint32_t (*a)[4], const __nv_bfloat16* tile, int row0, int g, int t) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const __nv_bfloat16* p = tile + (row0 + g) * TC_PAD + kk * 16 + t * 2;
        a[kk][0] = ld32(p);
        a[kk][1] = ld32(p + 8 * TC_PAD);
        a[kk][2] = ld32(p + 8);
        a[kk][3] = ld32(p + 8 * TC_PAD + 8);
    }
}

// acc[16×64] (8 n-tiles of 8) += A[16×64] · Bᵀ where B is a 64×64 tile stored row-major by n (tile[n][k]).
__device__ __forceinline__ void mmaABt(float (*acc)[4], const uint32_t (*a)[4], const __nv_bfloat16* tile, int g,
                                       int t) {
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const __nv_bfloat16* p = tile + (nt * 8 + g) * TC_PAD + kk * 16 + t * 2;
            mma16816(acc[nt], a[kk], ld32(p), ld32(p + 8));
        }
    }
}

// The accumulator fragments of 16×64 (probabilities) as A fragments for the next product (FA2's register reuse).
__device__ __forceinline__ void accToA(uint32_t (*a)[4], const float (*acc)[4]) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        a[kk][0] = packBf16(acc[2 * kk][0], acc[2 * kk][1]);
        a[kk][1] = packBf16(acc[2 * kk][2], acc[2 * kk][3]);
        a[kk][2] = packBf16(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
        a[kk][3] = packBf16(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
    }
}

__device__ __forceinline__ void zeroAcc(float (*acc)[4]) {
#pragma unroll
    for (int nt = 0; nt < 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
}

__device__ __forceinline__ float groupMax(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffff, v, 2));
}

__device__ __forceinline__ float groupSum(float v) {
    v += __shfl_xor_sync(0xffffffff, v, 1);
    return v + __shfl_xor_sync(0xffffffff, v, 2);
}

// Where a tile block works: batch b and head h from blockIdx.y, its first row from blockIdx.x, this thread's fragment
// coordinates (g = lane / 4, t = lane % 4), and the offsets of its sequence in qkv and in the B·T × C tensors.
struct TileTask {
    int b, h, bh, C, C3, warp, g, t, row0;
    size_t qkvBase, outBase;
};

__device__ __forceinline__ TileTask tileTask(int NH, int T) {
    TileTask k;
    k.bh = blockIdx.y;
    k.b = k.bh / NH;
    k.h = k.bh % NH;
    k.C = NH * TC_HS;
    k.C3 = 3 * k.C;
    k.warp = threadIdx.x >> 5;
    k.g = (threadIdx.x & 31) >> 2;
    k.t = threadIdx.x & 3;
    k.row0 = blockIdx.x * TC_ROWS;
    k.qkvBase = (size_t)k.b * T * k.C3;
    k.outBase = (size_t)k.b * T * k.C;
    return k;
}

// Forward: grid (ceil(T/64), B·NH), 128 threads; shared: Q, K, Vᵀ tiles.
extern "C" __global__ void __launch_bounds__(128) attention_forward_tc(void* out, int dtOut, float* lse, float* ocopy,
                                                                       const void* qkv, int dtQkv, int B, int T,
                                                                       int NH, float scale) {
    __shared__ __align__(16) __nv_bfloat16 sQ[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sK[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sVt[TC_ROWS * TC_PAD];
    TileTask k = tileTask(NH, T);
    int b = k.b, h = k.h, bh = k.bh, C = k.C, C3 = k.C3, warp = k.warp, g = k.g, t = k.t, q0 = k.row0;
    size_t rowBase = k.qkvBase;
    stageTile(sQ, qkv, dtQkv, rowBase + h * TC_HS, C3, q0, T, false);
    __syncthreads();
    uint32_t qa[4][4];
    loadA(qa, sQ, warp * 16, g, t);
    float o[8][4];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    zeroAcc(o);
    int rowA = q0 + warp * 16 + g;  // this thread's two query rows: rowA and rowA + 8
    for (int k0 = 0; k0 <= q0 && k0 < T; k0 += TC_ROWS) {
        __syncthreads();
        stageTile(sK, qkv, dtQkv, rowBase + C + h * TC_HS, C3, k0, T, false);
        stageTile(sVt, qkv, dtQkv, rowBase + 2 * C + h * TC_HS, C3, k0, T, true);
        __syncthreads();
        float s[8][4];
        zeroAcc(s);
        mmaABt(s, qa, sK, g, t);
        float mNew[2];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int row = rowA + half * 8;
            float mx = m[half];
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    int key = k0 + nt * 8 + t * 2 + c;
                    float v = key <= row && key < T ? s[nt][half * 2 + c] * scale : -INFINITY;
                    s[nt][half * 2 + c] = v;
                    mx = fmaxf(mx, v);
                }
            }
            mNew[half] = groupMax(mx);
        }
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float corr = mNew[half] == -INFINITY ? 1.0f : expf(m[half] - mNew[half]);
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    float p = mNew[half] == -INFINITY ? 0.0f : expf(s[nt][half * 2 + c] - mNew[half]);
                    s[nt][half * 2 + c] = p;
                    sum += p;
                }
                o[nt][half * 2] *= corr;
                o[nt][half * 2 + 1] *= corr;
            }
            l[half] = l[half] * corr + groupSum(sum);
            m[half] = mNew[half];
        }
        uint32_t pa[4][4];
        accToA(pa, s);
        mmaABt(o, pa, sVt, g, t);
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int row = rowA + half * 8;
        if (row >= T) continue;
        float inv = 1.0f / l[half];
        size_t oRow = ((size_t)b * T + row) * C + h * TC_HS;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                float v = o[nt][half * 2 + c] * inv;
                int d = nt * 8 + t * 2 + c;
                st(out, oRow + d, v, dtOut);
                ocopy[oRow + d] = v;
            }
        }
        if (t == 0) lse[(size_t)bh * T + row] = m[half] + logf(l[half]);
    }
}

// D = dO·O per (b, h, query row), from the fp32 output copy: one warp per row.
extern "C" __global__ void attention_backward_dsum(float* dsum, const void* dout, int dtDout, const float* ocopy,
                                                   int B, int T, int NH) {
    int warpsPerBlock = blockDim.x >> 5;
    size_t task = (size_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (task >= (size_t)B * NH * T) return;
    int t = (int)(task % T);
    int h = (int)((task / T) % NH);
    int b = (int)(task / ((size_t)T * NH));
    size_t off = ((size_t)b * T + t) * NH * TC_HS + h * TC_HS;
    float s = 0.0f;
    for (int d = lane; d < TC_HS; d += 32) s += ld(dout, off + d, dtDout) * ocopy[off + d];
    s = warpSum(s);
    if (lane == 0) dsum[((size_t)b * NH + h) * T + t] = s;
}

// dq for a tile of 64 query rows: over key tiles k0 ≤ the tile's last row, dS = P∘(dP − D)·scale, dq += dS·K.
extern "C" __global__ void __launch_bounds__(128) attention_backward_dq_tc(void* dqkv, int dtDqkv, const float* dsum,
                                                                           const void* dout, int dtDout,
                                                                           const void* qkv, int dtQkv,
                                                                           const float* lse, int B, int T, int NH,
                                                                           float scale) {
    __shared__ __align__(16) __nv_bfloat16 sK[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sV[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sKt[TC_ROWS * TC_PAD];
    TileTask k = tileTask(NH, T);
    int h = k.h, bh = k.bh, C = k.C, C3 = k.C3, warp = k.warp, g = k.g, t = k.t, q0 = k.row0;
    size_t rowBase = k.qkvBase, outBase = k.outBase;
    // Q and dO of this warp's rows as A fragments, staged through sK/sV before the loop.
    stageTile(sK, qkv, dtQkv, rowBase + h * TC_HS, C3, q0, T, false);
    stageTile(sV, dout, dtDout, outBase + h * TC_HS, C, q0, T, false);
    __syncthreads();
    uint32_t qa[4][4], da[4][4];
    loadA(qa, sK, warp * 16, g, t);
    loadA(da, sV, warp * 16, g, t);
    int rowA = q0 + warp * 16 + g;
    float L[2], Dr[2];
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int row = min(rowA + half * 8, T - 1);
        L[half] = lse[(size_t)bh * T + row];
        Dr[half] = dsum[(size_t)bh * T + row];
    }
    float dq[8][4];
    zeroAcc(dq);
    for (int k0 = 0; k0 <= q0 && k0 < T; k0 += TC_ROWS) {
        __syncthreads();
        stageTile(sK, qkv, dtQkv, rowBase + C + h * TC_HS, C3, k0, T, false);
        stageTile(sV, qkv, dtQkv, rowBase + 2 * C + h * TC_HS, C3, k0, T, false);
        stageTile(sKt, qkv, dtQkv, rowBase + C + h * TC_HS, C3, k0, T, true);
        __syncthreads();
        float s[8][4], dp[8][4];
        zeroAcc(s);
        zeroAcc(dp);
        mmaABt(s, qa, sK, g, t);
        mmaABt(dp, da, sV, g, t);
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                int row = rowA + half * 8;
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    int key = k0 + nt * 8 + t * 2 + c;
                    int i = half * 2 + c;
                    float p = key <= row && key < T && row < T ? expf(s[nt][i] * scale - L[half]) : 0.0f;
                    s[nt][i] = p * (dp[nt][i] - Dr[half]) * scale;
                }
            }
        }
        uint32_t dsa[4][4];
        accToA(dsa, s);
        mmaABt(dq, dsa, sKt, g, t);
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int row = rowA + half * 8;
        if (row >= T) continue;
        size_t qRow = rowBase + (size_t)row * C3 + h * TC_HS;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                size_t idx = qRow + nt * 8 + t * 2 + c;
                st(dqkv, idx, ld(dqkv, idx, dtDqkv) + dq[nt][half * 2 + c], dtDqkv);
            }
        }
    }
}

// dk, dv for a tile of 64 key rows: over query tiles from the key tile on, with transposed scores
// Sᵀ = K·Qᵀ: dv += Pᵀ·dO, dk += dSᵀ·Q.
extern "C" __global__ void __launch_bounds__(128) attention_backward_dkdv_tc(void* dqkv, int dtDqkv,
                                                                             const float* dsum, const void* dout,
                                                                             int dtDout, const void* qkv, int dtQkv,
                                                                             const float* lse, int B, int T, int NH,
                                                                             float scale) {
    __shared__ __align__(16) __nv_bfloat16 sQ[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sQt[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sO[TC_ROWS * TC_PAD];
    __shared__ __align__(16) __nv_bfloat16 sOt[TC_ROWS * TC_PAD];
    __shared__ float sL[TC_ROWS], sD[TC_ROWS];
    TileTask task = tileTask(NH, T);
    int h = task.h, bh = task.bh, C = task.C, C3 = task.C3, warp = task.warp, g = task.g, t = task.t;
    int k0 = task.row0;
    size_t rowBase = task.qkvBase, outBase = task.outBase;
    stageTile(sQ, qkv, dtQkv, rowBase + C + h * TC_HS, C3, k0, T, false);
    stageTile(sO, qkv, dtQkv, rowBase + 2 * C + h * TC_HS, C3, k0, T, false);
    __syncthreads();
    uint32_t ka[4][4], va[4][4];
    loadA(ka, sQ, warp * 16, g, t);
    loadA(va, sO, warp * 16, g, t);
    int keyA = k0 + warp * 16 + g;  // this thread's two key rows: keyA and keyA + 8
    float dk[8][4], dv[8][4];
    zeroAcc(dk);
    zeroAcc(dv);
    for (int q0 = k0; q0 < T; q0 += TC_ROWS) {
        __syncthreads();
        stageTile(sQ, qkv, dtQkv, rowBase + h * TC_HS, C3, q0, T, false);
        stageTile(sQt, qkv, dtQkv, rowBase + h * TC_HS, C3, q0, T, true);
        stageTile(sO, dout, dtDout, outBase + h * TC_HS, C, q0, T, false);
        stageTile(sOt, dout, dtDout, outBase + h * TC_HS, C, q0, T, true);
        for (int i = threadIdx.x; i < TC_ROWS; i += blockDim.x) {
            int row = min(q0 + i, T - 1);
            sL[i] = lse[(size_t)bh * T + row];
            sD[i] = dsum[(size_t)bh * T + row];
        }
        __syncthreads();
        float st_[8][4], dpt[8][4];
        zeroAcc(st_);
        zeroAcc(dpt);
        mmaABt(st_, ka, sQ, g, t);
        mmaABt(dpt, va, sO, g, t);
        float pt[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                int key = keyA + half * 8;
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    int qi = nt * 8 + t * 2 + c;
                    int query = q0 + qi;
                    int i = half * 2 + c;
                    float p = key <= query && query < T && key < T ? expf(st_[nt][i] * scale - sL[qi]) : 0.0f;
                    pt[nt][i] = p;
                    st_[nt][i] = p * (dpt[nt][i] - sD[qi]) * scale;
                }
            }
        }
        uint32_t pa[4][4], dsa[4][4];
        accToA(pa, pt);
        accToA(dsa, st_);
        mmaABt(dv, pa, sOt, g, t);
        mmaABt(dk, dsa, sQt, g, t);
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int key = keyA + half * 8;
        if (key >= T) continue;
        size_t kRow = rowBase + (size_t)key * C3 + C + h * TC_HS;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                int d = nt * 8 + t * 2 + c;
                st(dqkv, kRow + d, ld(dqkv, kRow + d, dtDqkv) + dk[nt][half * 2 + c], dtDqkv);
                st(dqkv, kRow + C + d, ld(dqkv, kRow + C + d, dtDqkv) + dv[nt][half * 2 + c], dtDqkv);
            }
        }
    }
}
