#pragma once
#include "common.cuh"
#include "elementwise.cuh"

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

// out[row, j] = Y[row, j] + Σ_q XA[row, q]·B[q, j] + bias[j] (bias may be null), fp32, rounded once (with applyGelu,
// gelu of that sum: an fc layer in a forward with no backward): Y is X·(W^R)ᵀ and XA is X·A, bf16 with row strides
// ldy and ldxa (the stacked product [X·(W^R)ᵀ | X·A | 0] gives both: ldy = ldxa = dOut + rPad, XA at column dOut; a
// decoding step writes them apart), B is r × dOut bf16; ldy and dOut multiples of 8, rPad of 32. A block of 256
// threads writes a tile of 64 rows × 128 columns, each thread 4 rows × 8 columns (one 16-byte vector of Y and of out
// per row). The rank runs in chunks of 32, each chunk's B (32 × 128) and X·A (64 × 32) staged in shared memory: B is
// read once per tile, not once per row, and every shared value loaded serves 4 or 8 FMAs. Past r both are taken as 0.
#define LR_TILE_ROWS 64
#define LR_TILE_COLS 128
#define LR_RANK_CHUNK 32

extern "C" __global__ void __launch_bounds__(256) linear_low_rank_epilogue(void* out, int dtOut,
                                                                           const __nv_bfloat16* y, int ldy,
                                                                           const __nv_bfloat16* xa, int ldxa,
                                                                           const void* b, int dtB, const void* bias,
                                                                           int dtBias, int rows, int dOut, int r,
                                                                           int rPad, int applyGelu) {
    __shared__ __align__(16) float sB[LR_RANK_CHUNK][LR_TILE_COLS];
    // Rows padded by 4: the staging stores spread over 8 banks, and each row stays 16-byte aligned for float4 reads.
    __shared__ __align__(16) float sXa[LR_RANK_CHUNK][LR_TILE_ROWS + 4];
    int tid = threadIdx.x;
    int colGroup = tid % 16;
    int rowGroup = tid / 16;
    int col0 = blockIdx.x * LR_TILE_COLS;
    int row0 = blockIdx.y * LR_TILE_ROWS;
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
            sXa[qq][rr] = row < rows && q0 + qq < r ? __bfloat162float(xa[(size_t)row * ldxa + q0 + qq]) : 0.0f;
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
        for (int k = 0; k < 8; k++) {
            v[k] += acc[i][k] + add[k];
            if (applyGelu) v[k] = gelu(v[k]);
        }
        if (dtOut == DT_BF16) {
            store8((__nv_bfloat16*)out + (size_t)row * dOut, j0 / 8, v);
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) st(out, (size_t)row * dOut + j0 + k, v[k], dtOut);
        }
    }
}
