#pragma once
#include "common.cuh"

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
