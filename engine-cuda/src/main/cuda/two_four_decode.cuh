#pragma once
#include "common.cuh"

// ---- 2:4 layers at a decoding step's few rows (at most 16): stream the weights once, on the tensor cores -----------
// Decoding is bound by reading the weights; a 2:4 layer's are its kept values (bf16, dOut × dIn/2) and, per kept value,
// its 2-bit offset within its group of 4: 1.125 bytes per weight against a dense layer's 2. cuSPARSELt's tile GEMM,
// fed rows padded to 16, stays well above that floor; these kernels read each byte of the layer once.

// The decode index: per row of W^R, 4 bits per aligned group of 4 along d_in (the lower kept offset in bits 0-1, the
// higher in bits 2-3), 4 groups per 16-bit word: the 16 inputs whose 8 kept values make one 16-byte vector of the
// values. dOut·dIn/8 bytes (0.125 per weight), built once per layer from the row mask (its bytes are the offsets, two
// per group, increasing; CudaSparseLinear), one thread per word.
extern "C" __global__ void two_four_decode_index(uint16_t* index, const uint2* rowKept, size_t words) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= words) return;
    uint2 kept = rowKept[i];
    uint32_t word = 0;
#pragma unroll
    for (int q = 0; q < 4; q++) {
        uint32_t pair = (q < 2 ? kept.x : kept.y) >> (16 * (q & 1));
        word |= ((pair & 3u) | ((pair >> 8) & 3u) << 2) << (4 * q);
    }
    index[i] = (uint16_t)word;
}

// out[r, o] = Σ_k x[r, k]·W^R[o, k] (+ bias[o]) for rows ≤ 16, fp32 accumulation, one rounding at the store. The
// tensor cores take W^R densely: each group's two kept bf16 are spread over its 4 slots (zeros elsewhere) by two byte
// permutes whose selectors a 16-entry table holds per index nibble, and mma m16n8k16 multiplies x (the 16 rows, m)
// with 8 rows of W^R (n). Any order of k within an mma is as good as another as long as x and W^R agree: lane
// 4g + t gives its k slots 2t, 2t + 1, 2t + 8, 2t + 9 to inputs K … K + 3 of one group, so each lane's x and W^R
// stay whole 16-byte vectors (no shuffles). A lane reads, per 64 inputs (a chunk), one 16-byte vector of values and
// its 2-byte index word for each of its 2 output rows (4 lanes cover a row's chunk: 64 contiguous bytes), and x's
// 16 inputs of rows g and g + 8 (through L1: every block reads all of x, which each load serves to 16 output rows).
// A block takes 16 output rows; its 16 warps split the chunks (warp w: w, w + 16, …), so a layer of few output rows
// still has enough loads in flight; their partial sums meet in shared memory and are added in warp order: the result
// does not depend on scheduling. Rows of W^R's values and index must be whole vectors: dIn a multiple of 16.
#define FEW_ROWS_MAX 16
#define FEW_ROWS_TILE 16
#define FEW_ROWS_WARPS 16

// prmt selector bytes placing one slot of a group: the lower kept value (bytes 0-1 of the pair), the higher (2-3), or
// zero (bytes of the second operand, 0).
__device__ __forceinline__ uint32_t slotSource(int slot, int lower, int higher) {
    return slot == lower ? 0x10u : slot == higher ? 0x32u : 0x44u;
}

// One chunk of 64 inputs as lane 4g + t holds it: the values and index word of its output rows g and 8 + g of the
// tile (inputs 16t … 16t + 15 of the chunk), and x's rows g and g + 8 there; zeros past dIn, dOut and rows.
struct FewRowsChunk {
    uint4 w[2];
    uint32_t nibbles[2];
    uint4 x[2][2];
};

__device__ __forceinline__ FewRowsChunk loadFewRowsChunk(const __nv_bfloat16* x, const __nv_bfloat16* values,
                                                         const uint16_t* index, int c, int o0, int g, int t, int rows,
                                                         int dOut, int dIn) {
    FewRowsChunk k = {};
    int vectorsPerRow = dIn / 16;
    int v = c * 4 + t;
    if (v >= vectorsPerRow) return k;
#pragma unroll
    for (int n = 0; n < 2; n++) {
        int o = o0 + 8 * n + g;
        if (o < dOut) {
            size_t at = (size_t)o * vectorsPerRow + v;
            k.w[n] = __ldg(reinterpret_cast<const uint4*>(values) + at);
            k.nibbles[n] = __ldg(index + at);
        }
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        if (g + 8 * h < rows) {
            const uint4* row = reinterpret_cast<const uint4*>(x + (size_t)(g + 8 * h) * dIn) + 2 * v;
            k.x[h][0] = __ldg(row);
            k.x[h][1] = __ldg(row + 1);
        }
    }
    return k;
}

// Group j of the lane's 16 inputs is mma j: x's words 2j, 2j + 1 (inputs 4j … 4j + 3) of rows g and g + 8 as a, the
// output row's group spread to its 4 slots as b.
__device__ __forceinline__ void multiplyFewRowsChunk(float (*acc)[4], const FewRowsChunk& k, const uint2* spread) {
    const uint32_t* xg = reinterpret_cast<const uint32_t*>(k.x[0]);
    const uint32_t* xg8 = reinterpret_cast<const uint32_t*>(k.x[1]);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t a[4] = {xg[2 * j], xg8[2 * j], xg[2 * j + 1], xg8[2 * j + 1]};
#pragma unroll
        for (int n = 0; n < 2; n++) {
            uint32_t kept = reinterpret_cast<const uint32_t*>(&k.w[n])[j];
            uint2 s = spread[(k.nibbles[n] >> (4 * j)) & 15u];
            mma16816(acc[n], a, __byte_perm(kept, 0, s.x), __byte_perm(kept, 0, s.y));
        }
    }
}

// Blocks of FEW_ROWS_WARPS warps, one block resident per multiprocessor at its registers: a layer of d_out 1600 (100
// tiles) still has 16 warps streaming on each of 100 multiprocessors, where blocks of 8 would leave 8. Each warp loads
// two chunks before multiplying either: twice the bytes in flight, which a kernel that only streams needs.
extern "C" __global__ void __launch_bounds__(32 * FEW_ROWS_WARPS) two_four_few_rows_forward(
    void* out, int dtOut, const __nv_bfloat16* x, const __nv_bfloat16* values, const uint16_t* index,
    const void* bias, int dtBias, int rows, int dOut, int dIn) {
    __shared__ uint2 spread[16];
    __shared__ float partial[FEW_ROWS_WARPS][FEW_ROWS_TILE * FEW_ROWS_MAX];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int g = lane >> 2, t = lane & 3;
    if (threadIdx.x < 16) {
        int lower = threadIdx.x & 3, higher = threadIdx.x >> 2;
        spread[threadIdx.x] = make_uint2(slotSource(0, lower, higher) | slotSource(1, lower, higher) << 8,
                                         slotSource(2, lower, higher) | slotSource(3, lower, higher) << 8);
    }
    __syncthreads();
    int o0 = blockIdx.x * FEW_ROWS_TILE;
    float acc[2][4] = {};
    for (int c = warp; c < (dIn + 63) / 64; c += 2 * FEW_ROWS_WARPS) {
        FewRowsChunk first = loadFewRowsChunk(x, values, index, c, o0, g, t, rows, dOut, dIn);
        FewRowsChunk second = loadFewRowsChunk(x, values, index, c + FEW_ROWS_WARPS, o0, g, t, rows, dOut, dIn);
        multiplyFewRowsChunk(acc, first, spread);
        multiplyFewRowsChunk(acc, second, spread);
    }
    // acc[n][e]: row g + 8·(e / 2) of x, output o0 + 8n + 2t + e % 2; a thread per (row, output) then adds the warps'.
#pragma unroll
    for (int n = 0; n < 2; n++) {
#pragma unroll
        for (int e = 0; e < 4; e++) partial[warp][(n * 4 + e) * 32 + lane] = acc[n][e];
    }
    __syncthreads();
    int r = threadIdx.x / FEW_ROWS_TILE, col = threadIdx.x % FEW_ROWS_TILE;
    int o = o0 + col;
    if (threadIdx.x >= FEW_ROWS_TILE * FEW_ROWS_MAX || r >= rows || o >= dOut) return;
    int n = col / 8, e = (r / 8) * 2 + col % 2;
    int at = (n * 4 + e) * 32 + (r % 8) * 4 + (col % 8) / 2;
    float sum = 0.0f;
    for (int q = 0; q < FEW_ROWS_WARPS; q++) sum += partial[q][at];
    if (bias != nullptr) sum += ld(bias, o, dtBias);
    st(out, (size_t)r * dOut + o, sum, dtOut);
}
