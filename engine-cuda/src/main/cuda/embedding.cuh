#pragma once
#include "common.cuh"

// ---- embedding ---------------------------------------------------------------------------------------------------

// Row r sits at position r mod T, or, for one decoding step (position not null), every row at *position: read on the
// device, so that a recorded step replays at the position uploaded for it. One outside wpe's P rows writes nothing.
extern "C" __global__ void embedding_forward(void* out, int dtOut, const int* tokens, const void* wte, int dtWte,
                                             const void* wpe, int dtWpe, int B, int T, int C, int V,
                                             const int* position, int P, int* err) {
    int at = position ? *position : -1;
    if (position && (at < 0 || at >= P)) {
        if (blockIdx.x == 0 && threadIdx.x == 0) report(err, ERR_POSITION_OUT_OF_RANGE);
        return;
    }
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / C;
        int c = (int)(i % C);
        int id = tokens[r];
        int t = position ? at : (int)(r % T);
        if (id < 0 || id >= V) {
            report(err, ERR_TOKEN_OUT_OF_RANGE);
            continue;
        }
        st(out, i, ld(wte, (size_t)id * C + c, dtWte) + ld(wpe, (size_t)t * C + c, dtWpe), dtOut);
    }
}

// One thread per channel walks the rows in order, like the CPU reference: a fixed summation order per vocabulary row
// with no atomics. Only C threads: the fallback when the token buckets below are not available.
extern "C" __global__ void embedding_backward(void* dwte, int dtDwte, void* dwpe, int dtDwpe, const void* dout,
                                              int dtDout, const int* tokens, int B, int T, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    size_t rows = (size_t)B * T;
    for (size_t r = 0; r < rows; r++) {
        int id = tokens[r];
        int t = (int)(r % T);
        float g = ld(dout, r * C + c, dtDout);
        size_t ie = (size_t)id * C + c;
        size_t ip = (size_t)t * C + c;
        st(dwte, ie, ld(dwte, ie, dtDwte) + g, dtDwte);
        st(dwpe, ip, ld(dwpe, ip, dtDwpe) + g, dtDwpe);
    }
}

// dwte for each distinct token u (block rows, u += gridDim.y), channels across threads: its rows (bucketRows[start[u]
// .. start[u+1]), increasing, as the CPU adds them) summed in order into its vocabulary row, rounded after every add.
// The count of distinct tokens is read on the device (bucketStart[rows + 1]), so a recorded pass replays with others.
extern "C" __global__ void embedding_backward_wte_buckets(void* dwte, int dtDwte, const void* dout, int dtDout,
                                                          const int* bucketTokens, const int* bucketStart,
                                                          const int* bucketRows, int C, int rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int distinct = bucketStart[rows + 1];
    for (int u = blockIdx.y; u < distinct; u += gridDim.y) {
        size_t ie = (size_t)bucketTokens[u] * C + c;
        float acc = ld(dwte, ie, dtDwte);
        for (int i = bucketStart[u]; i < bucketStart[u + 1]; i++) {
            acc = acc + ld(dout, (size_t)bucketRows[i] * C + c, dtDout);
            if (dtDwte == DT_BF16) acc = __bfloat162float(__float2bfloat16_rn(acc));
        }
        st(dwte, ie, acc, dtDwte);
    }
}

// dwpe[t, c] += Σ_b dout[b·T + t, c], b in order, rounded after every add.
extern "C" __global__ void embedding_backward_wpe(void* dwpe, int dtDwpe, const void* dout, int dtDout, int B, int T,
                                                  int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    size_t t = i / C;
    int c = (int)(i % C);
    float acc = ld(dwpe, i, dtDwpe);
    for (int b = 0; b < B; b++) {
        acc = acc + ld(dout, ((size_t)b * T + t) * C + c, dtDout);
        if (dtDwpe == DT_BF16) acc = __bfloat162float(__float2bfloat16_rn(acc));
    }
    st(dwpe, i, acc, dtDwpe);
}
