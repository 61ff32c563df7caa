#pragma once
#include "common.cuh"

// ---- attention ---------------------------------------------------------------------------------------------------
// Flash-style causal attention with online softmax: no T×T matrix exists anywhere. The forward keeps, per (b, h, t),
// the log-sum-exp of the scaled scores and an fp32 copy of the output row (for D = dO·O in the backward), O(T·C).
// One warp per query row (forward, dq) or key row (dk, dv); lanes own keys (or queries) for the scores and head
// dimensions for the accumulations. Plain fp32 FMAs: correct and simple; tensor-core tiles are the next step.

// The (b, h, row) of the row-per-warp kernels' warp: consecutive warps take consecutive rows of one (b, h), whose keys
// they then share in L1/L2. False for a warp past the last row.
__device__ __forceinline__ bool warpRow(int B, int T, int NH, int& b, int& h, int& row) {
    int warpsPerBlock = blockDim.x >> 5, warp = threadIdx.x >> 5;
    size_t task = (size_t)blockIdx.x * warpsPerBlock + warp;
    if (task >= (size_t)B * NH * T) return false;
    row = (int)(task % T);
    h = (int)((task / T) % NH);
    b = (int)(task / ((size_t)T * NH));
    return true;
}

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
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* q = smem + warp * HS;
    int b, h, t;
    if (!warpRow(B, T, NH, b, h, t)) return;
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
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* q = smem + warp * 2 * HS;
    float* dO = q + HS;
    int b, h, t;
    if (!warpRow(B, T, NH, b, h, t)) return;
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
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* k = smem + warp * 2 * HS;
    float* v = k + HS;
    int b, h, j;
    if (!warpRow(B, T, NH, b, h, j)) return;
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
