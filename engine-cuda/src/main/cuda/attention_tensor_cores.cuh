#pragma once
#include "common.cuh"

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
