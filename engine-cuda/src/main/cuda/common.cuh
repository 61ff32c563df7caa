#pragma once
// What every kernel file uses: storage codes (DT_*), loads and stores in any of them, the error word, warp
// and block reductions in a fixed order, and the 16-byte bf16 vector loads.

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

__device__ __forceinline__ uint4 pack8(const float* f) {
    uint4 u;
    __nv_bfloat162* h = (__nv_bfloat162*)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    return u;
}

__device__ __forceinline__ void store8(void* p, size_t v, const float* f) {
    ((uint4*)p)[v] = pack8(f);
}

// Two floats rounded to bf16, packed into one 32-bit word (lo in the low half).
__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// c += a·b on the tensor cores, m16n8k16, bf16 in, fp32 accumulate (PTX ISA's fragment layouts: lane = 4·g + t holds
// a's rows g and g + 8 at columns 2t, 2t + 1, 2t + 8, 2t + 9, b's column g at those rows, c's rows g and g + 8 at
// columns 2t, 2t + 1).
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
