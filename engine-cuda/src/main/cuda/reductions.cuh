#pragma once
#include "common.cuh"

// ---- column sums (bias gradients, LayerNorm parameter gradients) and the loss sum ----------------------------------

// The warps of a block in the column-sum partial kernels, here and in layernorm.cuh (their blocks are 256 threads).
#define COLUMN_SUMS_MAX_WARPS 8

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

// acc[0] += scale * Σ x: one block, each thread a fixed strided subset in order, then a fixed tree, so a step's loss
// is the same bit for bit from run to run (an atomic per block would add in arrival order).
extern "C" __global__ void add_scaled_sum(double* acc, const void* x, int dt, long long n, double scale) {
    __shared__ double shared[32];
    double s = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += ldd(x, i, dt);
    s = blockSum(s, shared);
    if (threadIdx.x == 0) acc[0] += scale * s;
}
