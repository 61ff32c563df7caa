#pragma once
#include "common.cuh"

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
