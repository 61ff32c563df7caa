#pragma once
#include "common.cuh"

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
