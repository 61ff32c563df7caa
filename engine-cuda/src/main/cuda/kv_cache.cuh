#pragma once
#include "common.cuh"

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
