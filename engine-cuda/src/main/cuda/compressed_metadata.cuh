#pragma once
#include "common.cuh"
#include "nm_sparse.cuh"

// ---- cuSPARSELt's 2:4 metadata, written by our own kernel ----------------------------------------------------------
// The layout is undocumented and arch/version specific, so it is learned on the device (CompressedMetadata.java):
// the metadata region (after the m·k/2 bf16 values) is read as an array of 2-bit fields, field f at bits 2(f % 16) of
// 32-bit word f / 16. A real field holds one kept element's index (0..3) in its group of 4; its map entry is
// gid·2 + slot (gid = row·(k/4) + group in row, slot 0 = the lower kept index), or -1 for padding. Probes compress
// supports whose groups keep {0,1} or {2,3} by one bit of gid; each probe adds that bit of every field's gid.

// Probe column masks for the dIn × dOut backward operand (gid = c·(dOut/4) + g): every group keeps {0,1}
// (probe -1), {2,3} (probe -2), or {0,1} / {2,3} as bit `probe` of gid is 0 / 1. One thread per mask word (8 groups).
extern "C" __global__ void metadata_probe_column_mask(uint32_t* mask, int dOut, int dIn, int probe) {
    size_t words = (size_t)(dOut / 32) * dIn;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < words; t += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(t % dIn);
        int g0 = (int)(t / dIn) * 8;
        uint32_t bits = 0;
        for (int q = 0; q < 8; q++) {
            size_t gid = (size_t)c * (dOut / 4) + g0 + q;
            bool high = probe == -2 || (probe >= 0 && ((gid >> probe) & 1));
            bits |= (high ? 0xCu : 0x3u) << (4 * q);
        }
        mask[t] = bits;
    }
}

__device__ __forceinline__ int metadataField(const uint32_t* meta, size_t f) {
    return (int)((meta[f >> 4] >> (2 * (f & 15))) & 3u);
}

// After the all-{0,1} probe: low[f] = the field's value there (slot for a real field), map[f] = 0.
extern "C" __global__ void metadata_learn_low(int* low, int* map, const uint32_t* meta, size_t fields) {
    for (size_t f = blockIdx.x * (size_t)blockDim.x + threadIdx.x; f < fields; f += (size_t)gridDim.x * blockDim.x) {
        low[f] = metadataField(meta, f);
        map[f] = 0;
    }
}

// After the all-{2,3} probe: a real field read 0/1 there and 2/3 here with the same low bit (slot 0 holds the lower
// index in both); padding reads the same in both (map -1). Anything else counts as a failure in bad[0].
extern "C" __global__ void metadata_learn_high(int* map, const int* low, const uint32_t* meta, size_t fields,
                                               int* bad) {
    for (size_t f = blockIdx.x * (size_t)blockDim.x + threadIdx.x; f < fields; f += (size_t)gridDim.x * blockDim.x) {
        int v = metadataField(meta, f);
        int l = low[f];
        if (v == l) {
            map[f] = -1;
        } else if (!(l < 2 && v == l + 2)) {
            atomicAdd(bad, 1);
        }
    }
}

// After bit probe p: a real field's index is 0/1 or 2/3 as bit p of its gid; its slot bit must stay; padding must not
// change. Real fields keep map = gid bits so far (the slot is added by metadata_learn_finish).
extern "C" __global__ void metadata_learn_bit(int* map, const int* low, const uint32_t* meta, size_t fields, int p,
                                              int* bad) {
    for (size_t f = blockIdx.x * (size_t)blockDim.x + threadIdx.x; f < fields; f += (size_t)gridDim.x * blockDim.x) {
        int v = metadataField(meta, f);
        int m = map[f];
        if (m < 0) {
            if (v != low[f]) atomicAdd(bad, 1);
        } else if ((v & 1) != low[f]) {
            atomicAdd(bad, 1);
        } else {
            map[f] = m | ((v >> 1) << p);
        }
    }
}

// map[f] = gid·2 + slot for real fields; each (gid, slot) counted in hits (2G ints, zeroed first); a gid out of range
// is a failure.
extern "C" __global__ void metadata_learn_finish(int* map, const int* low, int* hits, size_t fields, size_t groups,
                                                 int* bad) {
    for (size_t f = blockIdx.x * (size_t)blockDim.x + threadIdx.x; f < fields; f += (size_t)gridDim.x * blockDim.x) {
        int gid = map[f];
        if (gid < 0) continue;
        if ((size_t)gid >= groups) {
            atomicAdd(bad, 1);
            map[f] = -1;
            continue;
        }
        int entry = 2 * gid + low[f];
        map[f] = entry;
        atomicAdd(&hits[entry], 1);
    }
}

// The map is a bijection onto (gid, slot) iff every pair was hit exactly once. Also the padding template: each word of
// the all-{0,1} probe with its real fields cleared (what cuSPARSELt leaves in padding, kept by the writer).
extern "C" __global__ void metadata_learn_check(const int* hits, size_t entries, uint32_t* padding,
                                                const uint32_t* meta, const int* map, size_t words, int* bad) {
    size_t n = entries > words ? entries : words;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (i < entries && hits[i] != 1) atomicAdd(bad, 1);
        if (i < words) {
            uint32_t w = meta[i];
            for (int j = 0; j < 16; j++) {
                if (map[16 * i + j] >= 0) w &= ~(3u << (2 * j));
            }
            padding[i] = w;
        }
    }
}

// The refresh's fast path: the backward operand's metadata from the column mask, one thread per 32-bit word (16
// fields), instead of writing the support and calling cusparseLtSpMMACompress2. A group's two indices are its slots as
// transposedSlots pads them (the support the compress would have seen); a group keeping more than 2 is reported.
extern "C" __global__ void write_compressed_transposed_metadata(uint32_t* meta, const int4* map,
                                                                const uint32_t* padding, const uint32_t* columnMask,
                                                                int dOut, int dIn, size_t words, int* err) {
    int groupsPerRow = dOut / 4;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < words; t += (size_t)gridDim.x * blockDim.x) {
        uint32_t w = padding[t];
#pragma unroll
        for (int v = 0; v < 4; v++) {
            int4 q = map[4 * t + v];
            int e[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int u = 0; u < 4; u++) {
                if (e[u] < 0) continue;
                int gid = e[u] >> 1;
                bool slot[4], masked[4];
                if (transposedSlots(columnMask, dIn, gid / groupsPerRow, gid % groupsPerRow, slot, masked) > 2) {
                    report(err, ERR_COLUMN_MASK_OVER_TWO_OF_FOUR);
                }
                int index = -1;
                for (int j = 0, s = 0; j < 4; j++) {
                    if (slot[j] && s++ == (e[u] & 1)) {
                        index = j;
                        break;
                    }
                }
                w |= (uint32_t)(index & 3) << (2 * (4 * v + u));
            }
        }
        meta[t] = w;
    }
}
