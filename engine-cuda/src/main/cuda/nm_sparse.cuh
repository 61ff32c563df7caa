#pragma once
#include "common.cuh"

// ---- N:M masks ---------------------------------------------------------------------------------------------------
// Selection rule of NmMasks.topN: the N largest |w| of a group, equal magnitudes keep the lower index. An entry is
// kept iff fewer than N entries beat it, where k beats j if |w_k| > |w_j|, or equal and k < j. Magnitudes compared in
// fp64, so the result equals the CPU's for any input it is given.

__device__ __forceinline__ bool keptInGroup(const void* w, int dt, size_t start, size_t stride, int j, int N, int M) {
    double mj = fabs(ldd(w, start + (size_t)j * stride, dt));
    int beaten = 0;
    for (int k = 0; k < M; k++) {
        if (k == j) continue;
        double mk = fabs(ldd(w, start + (size_t)k * stride, dt));
        if (mk > mj || (mk == mj && k < j)) beaten++;
    }
    return beaten < N;
}

// The masks as the device holds them (CudaSparseLinear, PackedMasks). Row mask: per row, each kept entry's offset
// within its aligned group of M along the row, one byte each, increasing within a group (rows × cols/M·N bytes). The
// row mask keeps exactly N of every M, so kept entry j of a row lies in group j / N, at column (j / N)·M + offset.
// Column mask: one bit per weight, packed along the rows (d_out): bit r % 32 of word (r / 32)·cols + c is entry (r, c),
// so the words of consecutive columns are adjacent and threads over c read and write them coalesced.

__device__ __forceinline__ int keptColumn(const uint8_t* kept, size_t i, int k, int N, int M) {
    return (int)(i % (size_t)k) / N * M + kept[i];
}

__device__ __forceinline__ size_t maskWord(int r, int cols, int c) {
    return (size_t)(r >> 5) * cols + c;
}

__device__ __forceinline__ bool maskBit(const uint32_t* mask, int r, int cols, int c) {
    return (mask[maskWord(r, cols, c)] >> (r & 31)) & 1u;
}

// Row mask: per row, the offsets of the kept entries of each group in increasing order. One thread per group.
extern "C" __global__ void nm_row_prune(uint8_t* kept, const void* w, int dt, int rows, int cols, int N, int M) {
    size_t groupsPerRow = cols / M;
    size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (g >= (size_t)rows * groupsPerRow) return;
    size_t r = g / groupsPerRow;
    int c0 = (int)(g % groupsPerRow) * M;
    size_t out = r * (groupsPerRow * N) + (size_t)(c0 / M) * N;
    int k = 0;
    for (int j = 0; j < M; j++) {
        if (keptInGroup(w, dt, r * cols + c0, 1, j, N, M)) kept[out + k++] = (uint8_t)j;
    }
}

// Column mask (bits as above, 1 = kept): groups of M consecutive rows within each column; zeros are never kept. One
// thread per mask word (32 rows of one column, c fastest), each word written whole: bits past the last row are 0.
extern "C" __global__ void nm_column_prune(uint32_t* mask, const void* w, int dt, int rows, int cols, int N, int M) {
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (t >= (size_t)((rows + 31) / 32) * cols) return;
    int c = (int)(t % cols);
    int r0 = (int)(t / cols) * 32;
    uint32_t bits = 0;
    for (int b = 0; b < 32 && r0 + b < rows; b++) {
        int r = r0 + b;
        int g0 = r - r % M;
        bool keep = keptInGroup(w, dt, (size_t)g0 * cols + c, cols, r - g0, N, M)
                && ldd(w, (size_t)r * cols + c, dt) != 0.0;
        if (keep) bits |= 1u << b;
    }
    mask[t] = bits;
}

// nm_column_prune straight from W^R's kept values and row mask, for M dividing 32 (a group of M rows then lies in one
// mask word): no dense copy of W^R to write and read at every refresh. A block takes 32 rows × PRUNE_COLUMNS columns;
// each row's kept entries there (PRUNE_COLUMNS / M · N of them, contiguous) go to a shared tile at their columns, zero
// elsewhere, then one thread per column writes its word by the rule above on the same fp32 values: the same bits.
#define PRUNE_COLUMNS 128

extern "C" __global__ void __launch_bounds__(PRUNE_COLUMNS) nm_column_prune_kept(
    uint32_t* mask, const void* values, int dtValues, const uint8_t* rowKept, int rows, int cols, int N, int M) {
    __shared__ float tile[32][PRUNE_COLUMNS + 1];
    int c0 = blockIdx.x * PRUNE_COLUMNS;
    int r0 = blockIdx.y * 32;
    int k = cols / M * N;
    for (int i = threadIdx.x; i < 32 * (PRUNE_COLUMNS + 1); i += blockDim.x) (&tile[0][0])[i] = 0.0f;
    __syncthreads();
    int perRow = PRUNE_COLUMNS / M * N;
    for (int i = threadIdx.x; i < 32 * perRow; i += blockDim.x) {
        int r = r0 + i / perRow;
        int j = c0 / M * N + i % perRow;
        if (r < rows && j < k) {
            size_t at = (size_t)r * k + j;
            tile[i / perRow][keptColumn(rowKept, at, k, N, M) - c0] = ld(values, at, dtValues);
        }
    }
    __syncthreads();
    int c = c0 + threadIdx.x;
    if (c >= cols) return;
    uint32_t bits = 0;
    for (int b = 0; b < 32 && r0 + b < rows; b++) {
        int g0 = b - b % M;
        float mj = fabsf(tile[b][threadIdx.x]);
        int beaten = 0;
        for (int q = 0; q < M; q++) {
            float mq = fabsf(tile[g0 + q][threadIdx.x]);
            if (g0 + q != b && (mq > mj || (mq == mj && g0 + q < b))) beaten++;
        }
        if (beaten < N && mj != 0.0f) bits |= 1u << b;
    }
    mask[maskWord(r0, cols, c)] = bits;
}

// Sets the column mask's bit at every row-mask position (the mask is zeroed first): the backward support when there is
// no double pruning. Integer atomics only (bits of one word come from up to 32 rows).
extern "C" __global__ void mark_row_kept(uint32_t* mask, const uint8_t* kept, int rows, int cols, int k, int N,
                                         int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    int r = (int)(i / k);
    atomicOr(&mask[maskWord(r, cols, keptColumn(kept, i, k, N, M))], 1u << (r & 31));
}

// values[r, j] = dense[r, column of kept entry (r, j)].
extern "C" __global__ void gather_kept(void* values, int dtValues, const void* dense, int dtDense,
                                       const uint8_t* kept, int rows, int cols, int k, int N, int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    size_t r = i / k;
    std_(values, i, ldd(dense, r * cols + keptColumn(kept, i, k, N, M), dtDense), dtValues);
}

// dvalues[r, j] += dense[r, column of kept entry (r, j)]: the row mask's gather of a dense weight gradient
// (docs/method.md: ∇W).
extern "C" __global__ void gather_kept_add(void* dvalues, int dtValues, const void* dense, int dtDense,
                                           const uint8_t* kept, int rows, int cols, int k, int N, int M) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    size_t r = i / k;
    st(dvalues, i, ld(dvalues, i, dtValues) + ld(dense, r * cols + keptColumn(kept, i, k, N, M), dtDense), dtValues);
}

__device__ __forceinline__ float inGroupOfFour(float4 d, int offset) {
    return offset == 0 ? d.x : offset == 1 ? d.y : offset == 2 ? d.z : d.w;
}

// gather_kept_add for fp32 at 2:4, one group of four columns a thread: one 16-byte load of the dense gradient, the
// group's two kept offsets as one 2-byte load, its two values as one 8-byte load and store; no index divisions.
extern "C" __global__ void gather_kept_add_f32_2of4(float2* dvalues, const float4* dense, const uint16_t* kept,
                                                    size_t groups) {
    size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (g >= groups) return;
    float4 d = dense[g];
    uint16_t offsets = kept[g];
    float2 v = dvalues[g];
    v.x += inGroupOfFour(d, offsets & 0xff);
    v.y += inGroupOfFour(d, offsets >> 8);
    dvalues[g] = v;
}

// dense[r, c] = values[r, j] at every kept entry (r, j) of column c (dense zeroed first): W^R, or with transpose = 1
// its transpose (cols × rows), keeping only entries whose column-mask bit is set when mask is not null: (W^{R,C})ᵀ.
extern "C" __global__ void scatter_kept(void* dense, int dtDense, const void* values, int dtValues,
                                        const uint8_t* kept, const uint32_t* mask, int rows, int cols, int k, int N,
                                        int M, int transpose) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * k) return;
    int r = (int)(i / k);
    int c = keptColumn(kept, i, k, N, M);
    if (mask != nullptr && !maskBit(mask, r, cols, c)) return;
    size_t at = transpose ? (size_t)c * rows + r : (size_t)r * cols + c;
    std_(dense, at, ldd(values, i, dtValues), dtDense);
}

// The kept values written straight into the value region of cuSPARSELt's compressed 2:4 buffer: the kept entries of
// the row-major operand in row-major order, ascending within each group (GPU_LIMITS.md §3; proven byte for byte
// against a fresh compression by CompressedLayoutTest on the shipped library version).
extern "C" __global__ void write_compressed_values(__nv_bfloat16* compressed, const void* values, int dtValues,
                                                   size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        compressed[i] = __float2bfloat16_rn(ld(values, i, dtValues));
    }
}

// The backward operand (W^{R,C})ᵀ, dIn × dOut, in place between column-mask refreshes (ADR 004). The mask keeps at most
// 2 of every aligned 4 along dOut (2:4 and 1:2 patterns; fewer where W^R was zero at the refresh). Each group's slots:
// the mask's positions, padded with its lowest other positions to exactly 2 (their values stay 0), so that compressing
// the support (ones at the slots) fixes the metadata until the next refresh. One thread per (column c of W, group g of
// 4 rows); c varies fastest so the mask reads coalesce. A group's 4 bits lie in one mask word (4g % 32 is at most 28).
// A group keeping more than 2 is reported, never compressed wrong.
__device__ __forceinline__ int transposedSlots(const uint32_t* columnMask, int dIn, int c, int g, bool slot[4],
                                               bool masked[4]) {
    uint32_t bits = columnMask[maskWord(4 * g, dIn, c)] >> ((4 * g) & 31);
    int kept = 0;
    for (int j = 0; j < 4; j++) {
        masked[j] = (bits >> j) & 1u;
        kept += masked[j];
    }
    int pad = 2 - kept;
    for (int j = 0; j < 4; j++) {
        slot[j] = masked[j] || (pad > 0 && pad-- > 0);
    }
    return kept;
}

extern "C" __global__ void column_mask_support_transposed(__nv_bfloat16* support, const uint32_t* columnMask,
                                                          int dOut, int dIn, int* err) {
    size_t groups = (size_t)(dOut / 4) * dIn;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < groups; t += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(t % dIn);
        int g = (int)(t / dIn);
        bool slot[4], masked[4];
        if (transposedSlots(columnMask, dIn, c, g, slot, masked) > 2) report(err, ERR_COLUMN_MASK_OVER_TWO_OF_FOUR);
        for (int j = 0; j < 4; j++) {
            support[(size_t)c * dOut + 4 * g + j] = __float2bfloat16_rn(slot[j] ? 1.0f : 0.0f);
        }
    }
}

// The values of (W^{R,C})ᵀ straight into its compressed value region (row c holds its dOut / 2 slots in increasing r),
// once the support above is compressed: W^R[r][c] at the mask's positions, 0 at the padding. A block takes 128 rows r
// × 32 columns c of W^R: the rows' kept values (16 a row at 2:4, contiguous) are read coalesced and placed into a
// shared tile transposed, (c, r), zero where W^R is; then each (c, group g of 4 rows) reads its four values as one
// 16-byte load and writes its two slots as one 32-bit word, g fastest (a row c of the output is contiguous). Grid
// (⌈dIn/32⌉, ⌈dOut/128⌉), 256 threads; the row mask is N:M with M = 2N (2:4 or 1:2: half of every row kept, so the
// 16 kept values of a row that fall in 32 columns are contiguous). Each thread issues its 8 loads of kept values (and
// their offsets) at once, before zeroing its share of the tile, so that their latencies overlap (with one load after
// another the kernel ran at a quarter of its memory floor: 5.1 ms of 191 calls at 1558M, floor ≈ 1.2).
#define TRANSPOSED_THREADS 256
#define TRANSPOSED_LOADS (128 * 16 / TRANSPOSED_THREADS)

extern "C" __global__ void __launch_bounds__(TRANSPOSED_THREADS) write_compressed_transposed_values(
    __nv_bfloat16* compressed, const void* values, int dtValues, const uint8_t* rowKept, const uint32_t* columnMask,
    int dOut, int dIn, int N, int M) {
    __shared__ __align__(16) float tile[32][132];
    int c0 = blockIdx.x * 32;
    int r0 = blockIdx.y * 128;
    int k = dIn / 2;
    float value[TRANSPOSED_LOADS];
    int column[TRANSPOSED_LOADS];
#pragma unroll
    for (int u = 0; u < TRANSPOSED_LOADS; u++) {
        int i = threadIdx.x + u * TRANSPOSED_THREADS;
        int r = r0 + i / 16;
        int j = c0 / 2 + i % 16;  // the kept index in row r: those of columns c0 onwards
        column[u] = -1;
        if (r < dOut && j < k) {
            size_t at = (size_t)r * k + j;
            column[u] = keptColumn(rowKept, at, k, N, M) - c0;
            value[u] = ld(values, at, dtValues);
        }
    }
    for (int i = threadIdx.x; i < 32 * 132; i += TRANSPOSED_THREADS) (&tile[0][0])[i] = 0.0f;
    __syncthreads();
#pragma unroll
    for (int u = 0; u < TRANSPOSED_LOADS; u++) {
        if (column[u] >= 0) tile[column[u]][(threadIdx.x + u * TRANSPOSED_THREADS) / 16] = value[u];
    }
    __syncthreads();
    int lane = threadIdx.x & 31;
    int groups = dOut / 4;
    uint32_t* words = reinterpret_cast<uint32_t*>(compressed);
    for (int y = threadIdx.x >> 5; y < 32; y += blockDim.x >> 5) {
        int c = c0 + y;
        int g = blockIdx.y * 32 + lane;
        if (c >= dIn || g >= groups) continue;
        bool slot[4], masked[4];
        transposedSlots(columnMask, dIn, c, g, slot, masked);
        float4 q = *reinterpret_cast<const float4*>(&tile[y][4 * lane]);
        float w[4] = {q.x, q.y, q.z, q.w};
        float v[2] = {0.0f, 0.0f};
        int s = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (slot[j] && s < 2) {
                if (masked[j]) v[s] = w[j];
                s++;
            }
        }
        words[(size_t)c * groups + g] = packBf16(v[0], v[1]);
    }
}
