// CUTLASS's Hopper 2:4 sparse GEMM (wgmma.sp) on SLoPe's layer shapes, for the go/no-go on a 2:4 GEMM of our own
// (bench/NOTES.md, "What limits the rest"): is it as fast as cuSPARSELt, and what does an epilogue that cuSPARSELt
// lacks (GELU plus the pre-activation written beside it, what GELU's backward needs) cost?
//
// For each weight shape DOUTxDIN (GemmBench's convention, so that its cuSPARSELt lines join ours) it times
//   fwd  out[rows×dOut] = X[rows×dIn]·Wᵀ + bias   variants "bias" and "gelu-aux" (out = GELU(pre), aux = pre)
//   dx   dX[rows×dIn]  = dY[rows×dOut]·W          variant "plain" (the bias kernel with no bias: a plain GEMM), and
//        on the MLP's fc2 weights (dIn = 4·dOut) variant "dgelu-dbias": D = dGELU(dY·W, aux) with aux the fc layer's
//        pre-activation read beside it, and dbias = D summed over the rows (fc's bias gradient), what SLoPe's MLP
//        backward runs today as the 2:4 dX, a GELU backward pass and the bias's column sums
// with the 2:4 operand along the reduced dimension (dIn for fwd, dOut for dx, as W^{R,C} is in SLoPe's backward).
// In CUTLASS's terms the sparse A is the weight (M = output width, K = reduced width, row-major), B = Xᵀ (K×N column-
// major, N = rows) and D is M×N column-major, which is our row-major rows×(output width); the bias is per M row.
// Each result is checked against an fp32 reference GEMM on the dense masked weight (‖D − ref‖/‖ref‖ ≤ 4e-3, also for
// aux and dbias), then timed: a warm-up, 50 back-to-back runs each between CUDA events, their median and mean. One JSON line per
// (shape, GEMM, variant, tile), a table at the end; the exit code is 1 if any check failed, 2 on a GPU other than
// sm_90 (or bad arguments), 3 on a CUDA error.
//
// Usage: sparse_gemm_bench [--rows N] [--reps R] [DOUTxDIN ...]   (default: GPT-2 1558M's and the d = 2560 model's)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/transform/device/transform_universal_adapter.hpp"
#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
#include "cutlass/util/packed_stride.hpp"
#include "cutlass/version.h"

using namespace cute;

#define CUDA_OK(call)                                                                                          \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess) {                                                                               \
            std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__,       \
                         cudaGetErrorString(e_));                                                              \
            std::exit(3);                                                                                      \
        }                                                                                                      \
    } while (0)

using Bf16 = cutlass::bfloat16_t;
using ProblemShape = Shape<int, int, int, int>; // M, N, K, L
constexpr int kAlign = 8;                         // 16 bytes of bf16: what TMA needs

// ---- The kernels: one mainloop, two epilogues (fusion operations), two tile shapes. ----

using FusionBias = cutlass::epilogue::fusion::LinCombPerRowBias<Bf16, float, Bf16, Bf16>;
// GELU_taylor is the tanh form (GPT-2's); aux gets the pre-activation acc + bias in bf16, the layout of D.
using FusionGeluAux = cutlass::epilogue::fusion::LinCombPerRowBiasEltActAux<
    cutlass::layout::ColumnMajor, cutlass::epilogue::thread::GELU_taylor, Bf16, float, Bf16, Bf16, Bf16>;

// dGELU of the tanh form at the pre-activation read from aux; dbias (fp32) summed over N in a fixed order (a workspace
// and tile counters, no atomics), so runs repeat bit for bit.
using FusionDGeluDBias = cutlass::epilogue::fusion::LinCombDeEltActDePerRowBias<
    cutlass::layout::ColumnMajor, cutlass::epilogue::thread::dGELU, Bf16, float, Bf16, float>;

template <class Tile, class Cluster, class Fusion>
struct SparseGemm {
    // C is void: nothing is read besides the operands and the bias (beta·C is not what we measure).
    using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp, Tile, Cluster,
        cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, cutlass::layout::ColumnMajor, kAlign,
        Bf16, cutlass::layout::ColumnMajor, kAlign, cutlass::epilogue::TmaWarpSpecializedCooperative,
        Fusion>::CollectiveOp;
    using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp, Bf16, cutlass::layout::RowMajor, 2 * kAlign, Bf16,
        cutlass::layout::ColumnMajor, kAlign, float, Tile, Cluster,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
        cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<
        cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>>;
    static constexpr bool kGeluAux = std::is_same_v<Fusion, FusionGeluAux>;
    static constexpr bool kDGelu = std::is_same_v<Fusion, FusionDGeluDBias>;
};

// Example 62's tile (128×128×128, cluster 1×2) and a taller one that halves B's reloads per A byte. Both have K-tile
// 128, so they share one SparseConfig: one compressed weight serves both.
using TileA = Shape<_128, _128, _128>;
using TileB = Shape<_256, _128, _128>;
using Cluster12 = Shape<_1, _2, _1>;
constexpr const char* kTileA = "128x128x128 cluster 1x2x1 cooperative";
constexpr const char* kTileB = "256x128x128 cluster 1x2x1 cooperative";

using BiasA = SparseGemm<TileA, Cluster12, FusionBias>;
using GeluA = SparseGemm<TileA, Cluster12, FusionGeluAux>;
using BiasB = SparseGemm<TileB, Cluster12, FusionBias>;
using GeluB = SparseGemm<TileB, Cluster12, FusionGeluAux>;
using DGeluA = SparseGemm<TileA, Cluster12, FusionDGeluDBias>;
using DGeluB = SparseGemm<TileB, Cluster12, FusionDGeluDBias>;

using SparseConfig = BiasA::Mainloop::SparseConfig;
static_assert(std::is_same_v<SparseConfig, BiasB::Mainloop::SparseConfig>);
using Compressor = cutlass::transform::device::TransformUniversalAdapter<
    cutlass::transform::kernel::StructuredSparseCompressor<ProblemShape, Bf16, cutlass::layout::RowMajor, SparseConfig,
                                                           cutlass::arch::Sm90>>;
using CompressorUtility =
    cutlass::transform::kernel::StructuredSparseCompressorUtility<ProblemShape, Bf16, cutlass::layout::RowMajor,
                                                                  SparseConfig>;

// ---- Data, reference and checks: plain CUDA. ----

__device__ __forceinline__ float uniform(uint64_t i, uint64_t seed) { // splitmix64 → [-1, 1)
    uint64_t z = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return float(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void fill_uniform(Bf16* p, size_t n, float scale, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        p[i] = Bf16(scale * uniform(i, seed));
    }
}

// A 2:4 weight, rows×k row-major: in each aligned group of 4 along k, 2 kept at one of the 6 position pairs, drawn
// per group. Kept values are never 0 (|v| ≥ scale/4), so the compressor sees exactly the drawn pattern.
__global__ void fill_two_four(Bf16* w, size_t groups, float scale, uint64_t seed) {
    const int pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
    for (size_t g = blockIdx.x * size_t(blockDim.x) + threadIdx.x; g < groups; g += size_t(gridDim.x) * blockDim.x) {
        int pick = int((uniform(g, seed) + 1.0f) * 3.0f) % 6;
        for (int j = 0; j < 4; ++j) {
            float u = uniform(4 * g + j, seed + 1);
            float v = copysignf(0.25f + 0.75f * fabsf(u), u);
            w[4 * g + j] = (j == pairs[pick][0] || j == pairs[pick][1]) ? Bf16(scale * v) : Bf16(0.0f);
        }
    }
}

// ref (M×N column-major, fp32) = A (M×K row-major) · B (K×N column-major, i.e. N×K row-major) + bias: 64×64 tiles,
// 4×4 outputs a thread. Slow next to the tensor cores but exact enough, and independent of CUTLASS.
__global__ void reference_gemm(float* ref, const Bf16* a, const Bf16* b, const Bf16* bias, int m, int n, int k) {
    __shared__ float as[16][65], bs[16][65];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int m0 = blockIdx.x * 64, n0 = blockIdx.y * 64;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < k; k0 += 16) {
        for (int i = threadIdx.x; i < 64 * 16; i += 256) {
            int r = i / 16, c = i % 16;
            as[c][r] = (m0 + r < m && k0 + c < k) ? float(a[size_t(m0 + r) * k + k0 + c]) : 0.0f;
            bs[c][r] = (n0 + r < n && k0 + c < k) ? float(b[size_t(n0 + r) * k + k0 + c]) : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < 16; ++c) {
            for (int i = 0; i < 4; ++i) {
                for (int j = 0; j < 4; ++j) {
                    acc[i][j] += as[c][tx * 4 + i] * bs[c][ty * 4 + j];
                }
            }
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
            int mi = m0 + tx * 4 + i, nj = n0 + ty * 4 + j;
            if (mi < m && nj < n) {
                ref[size_t(nj) * m + mi] = acc[i][j] + (bias ? float(bias[mi]) : 0.0f);
            }
        }
    }
}

__device__ __forceinline__ float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float dgelu_tanh(float d, float z) {
    float t = tanhf(0.7978845608028654f * (z + 0.044715f * z * z * z));
    return d * (0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * z * z));
}

// What a variant's D should be at element i, from the fp32 reference (and, for dGELU, the pre-activation z).
enum class Want { kRef, kGelu, kDGelu };

__device__ __forceinline__ float wanted(Want want, const float* ref, const Bf16* z, size_t i) {
    return want == Want::kGelu ? gelu_tanh(ref[i]) : want == Want::kDGelu ? dgelu_tanh(ref[i], float(z[i])) : ref[i];
}

// sums[0] += Σ (got − want)², sums[1] += Σ want².
__global__ void error_sums(double* sums, const Bf16* got, const float* ref, const Bf16* z, size_t n, Want want_of) {
    double d2 = 0, r2 = 0;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        float want = wanted(want_of, ref, z, i);
        double d = double(float(got[i])) - want;
        d2 += d * d;
        r2 += double(want) * want;
    }
    for (int o = 16; o > 0; o /= 2) {
        d2 += __shfl_down_sync(0xffffffffu, d2, o);
        r2 += __shfl_down_sync(0xffffffffu, r2, o);
    }
    if (threadIdx.x % 32 == 0) {
        atomicAdd(&sums[0], d2);
        atomicAdd(&sums[1], r2);
    }
}

// The same sums for dbias against Σ over the N columns of dGELU(ref, z), D being M×N column-major; one thread a row.
__global__ void dbias_error_sums(double* sums, const float* got, const float* ref, const Bf16* z, int m, int n) {
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < m; r += gridDim.x * blockDim.x) {
        double want = 0;
        for (int c = 0; c < n; ++c) {
            want += dgelu_tanh(ref[size_t(c) * m + r], float(z[size_t(c) * m + r]));
        }
        double d = double(got[r]) - want;
        atomicAdd(&sums[0], d * d);
        atomicAdd(&sums[1], want * want);
    }
}

template <class T>
struct DeviceBuffer {
    T* p = nullptr;
    explicit DeviceBuffer(size_t count) { CUDA_OK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T))); }
    ~DeviceBuffer() { cudaFree(p); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

double rel_err(const Bf16* got, const float* ref, const Bf16* z, size_t n, Want want) {
    DeviceBuffer<double> sums(2);
    CUDA_OK(cudaMemset(sums.p, 0, 2 * sizeof(double)));
    error_sums<<<1024, 256>>>(sums.p, got, ref, z, n, want);
    double h[2];
    CUDA_OK(cudaMemcpy(h, sums.p, sizeof h, cudaMemcpyDeviceToHost));
    return h[1] > 0 ? std::sqrt(h[0] / h[1]) : NAN;
}

double dbias_rel_err(const float* got, const float* ref, const Bf16* z, int m, int n) {
    DeviceBuffer<double> sums(2);
    CUDA_OK(cudaMemset(sums.p, 0, 2 * sizeof(double)));
    dbias_error_sums<<<(m + 127) / 128, 128>>>(sums.p, got, ref, z, m, n);
    double h[2];
    CUDA_OK(cudaMemcpy(h, sums.p, sizeof h, cudaMemcpyDeviceToHost));
    return h[1] > 0 ? std::sqrt(h[0] / h[1]) : NAN;
}

// ---- Whether SLoPe could keep CUTLASS's operands in place, as it keeps cuSPARSELt's (bench/NOTES.md). ----

// CUTLASS's compressed weight written by our own rule instead of its compressor, from the dense 2:4 weight (rows×k
// row-major, exactly 2 nonzeros a group): the kept values row-major, rows × k/2 in their order within each group of 4
// (what SLoPe's optimizer already writes for cuSPARSELt), and each group's two kept positions as 4 bits (first |
// second << 2), two groups a byte, the first in the low nibble, each byte placed where CUTLASS's layout of E
// (SparseConfig::fill_layoutE, a fixed atom of 64 rows × 128 columns tiled over the matrix) puts row r's byte j. One
// thread a byte. If both regions equal the compressor's, an optimizer can update CUTLASS's operands in place and a
// column-mask refresh can write E by formula, with no learned map and no compression. A byte the layout places past
// the region is counted in out_of_range, not written: a wrong reading of the layout must not fault the timings after.
template <class LayoutE>
__global__ void write_operands_in_place(Bf16* values, uint8_t* meta, size_t meta_bytes,
                                        unsigned long long* out_of_range, const Bf16* w, int rows, int k,
                                        LayoutE layout_e) {
    auto e = cute::recast<typename SparseConfig::ElementEMmaRaw>(
        make_tensor(make_gmem_ptr(cute::recast_ptr<typename SparseConfig::ElementEMma>(meta)), layout_e));
    int bytes_per_row = k / 8;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < size_t(rows) * bytes_per_row;
         i += size_t(gridDim.x) * blockDim.x) {
        int r = int(i / bytes_per_row), j = int(i % bytes_per_row);
        uint8_t byte = 0;
        for (int g = 0; g < 2; ++g) {
            const Bf16* group = w + size_t(r) * k + 8 * j + 4 * g;
            Bf16* kept = values + size_t(r) * (k / 2) + 4 * j + 2 * g;
            int slot = 0, code = 0;
            for (int q = 0; q < 4 && slot < 2; ++q) {
                if (float(group[q]) != 0.0f) {
                    kept[slot] = group[q];
                    code |= q << (2 * slot++);
                }
            }
            byte |= uint8_t(code << (4 * g));
        }
        size_t at = size_t(e.layout()(r, j, 0));
        if (at < meta_bytes) {
            meta[at] = byte;
        } else {
            atomicAdd(out_of_range, 1ull);
        }
    }
}

__global__ void count_differences(unsigned long long* count, const uint8_t* a, const uint8_t* b, size_t n) {
    unsigned long long c = 0;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        c += a[i] != b[i];
    }
    atomicAdd(count, c);
}

size_t differences(const uint8_t* a, const uint8_t* b, size_t n) {
    DeviceBuffer<unsigned long long> count(1);
    CUDA_OK(cudaMemset(count.p, 0, sizeof(unsigned long long)));
    count_differences<<<1024, 256>>>(count.p, a, b, n);
    unsigned long long h;
    CUDA_OK(cudaMemcpy(&h, count.p, sizeof h, cudaMemcpyDeviceToHost));
    return size_t(h);
}

// ---- One GEMM problem: its operands, compressed weight, reference, and the runs. ----

struct Problem {
    int m, n, k; // M = output width, N = rows, K = reduced width
    bool bias;
    DeviceBuffer<Bf16> w, x, b;
    DeviceBuffer<float> ref;
    DeviceBuffer<uint8_t> wc, e;           // compressed weight and its metadata, CUTLASS's layouts
    DeviceBuffer<Bf16> d, aux;
    DeviceBuffer<Bf16> pre;   // dx: a pre-activation for dGELU to read
    DeviceBuffer<float> dbias;

    Problem(int m_, int n_, int k_, bool bias_, uint64_t seed, int sms)
        : m(m_), n(n_), k(k_), bias(bias_), w(size_t(m) * k), x(size_t(n) * k), b(m), ref(size_t(m) * n),
          wc(utility().get_compressed_tensor_A_bytes()), e(utility().get_tensor_E_bytes()), d(size_t(m) * n),
          aux(size_t(m) * n), pre(bias_ ? 0 : size_t(m) * n), dbias(m) {
        // Weights scaled so that pre-activations are O(1): GELU's curved part, not its linear tails, is checked.
        fill_two_four<<<1024, 256>>>(w.p, size_t(m) * k / 4, 2.0f / std::sqrt(float(k)), seed);
        fill_uniform<<<1024, 256>>>(x.p, size_t(n) * k, 1.0f, seed + 2);
        fill_uniform<<<64, 256>>>(b.p, m, 0.5f, seed + 3);
        if (!bias) {
            fill_uniform<<<1024, 256>>>(pre.p, size_t(m) * n, 3.0f, seed + 4); // GELU's curved part and both tails
        }
        CUDA_OK(cudaGetLastError());
        reference_gemm<<<dim3((m + 63) / 64, (n + 63) / 64), 256>>>(ref.p, w.p, x.p, bias ? b.p : nullptr, m, n, k);
        CUDA_OK(cudaGetLastError());
        // Zeroed first: whatever padding the compressor does not write reads as 0.
        CUDA_OK(cudaMemset(wc.p, 0, utility().get_compressed_tensor_A_bytes()));
        CUDA_OK(cudaMemset(e.p, 0, utility().get_tensor_E_bytes()));
        cutlass::KernelHardwareInfo hw{0, sms};
        typename Compressor::Arguments args{shape(), {w.p, stride_w(), reinterpret_cast<Bf16*>(wc.p), e.p}, {hw}};
        Compressor compressor;
        DeviceBuffer<uint8_t> workspace(Compressor::get_workspace_size(args));
        check(compressor.can_implement(args), "compressor can_implement");
        check(compressor.initialize(args, workspace.p), "compressor initialize");
        check(compressor.run(), "compressor run");
        CUDA_OK(cudaDeviceSynchronize());
        compare_in_place_writer();
    }

    // Bytes of the compressor's value and metadata regions that our in-place rule writes differently (the values
    // compared over rows × k/2; the metadata over its whole padded region, both zeroed first, plus the bytes placed
    // past it).
    size_t value_differences = 0, metadata_differences = 0;

    void compare_in_place_writer() {
        size_t value_bytes = size_t(m) * k / 2 * sizeof(Bf16), meta_bytes = utility().get_tensor_E_bytes();
        DeviceBuffer<Bf16> values(size_t(m) * k / 2);
        DeviceBuffer<uint8_t> meta(meta_bytes);
        DeviceBuffer<unsigned long long> out_of_range(1);
        CUDA_OK(cudaMemset(meta.p, 0, meta_bytes));
        CUDA_OK(cudaMemset(out_of_range.p, 0, sizeof(unsigned long long)));
        write_operands_in_place<<<1024, 256>>>(values.p, meta.p, meta_bytes, out_of_range.p, w.p, m, k,
                                               SparseConfig::fill_layoutE(shape()));
        CUDA_OK(cudaGetLastError());
        unsigned long long outside;
        CUDA_OK(cudaMemcpy(&outside, out_of_range.p, sizeof outside, cudaMemcpyDeviceToHost));
        value_differences = differences(reinterpret_cast<const uint8_t*>(values.p), wc.p, value_bytes);
        metadata_differences = differences(meta.p, e.p, meta_bytes) + size_t(outside);
    }

    ProblemShape shape() const { return {m, n, k, 1}; }
    CompressorUtility utility() const { return CompressorUtility(shape(), stride_w()); }
    cutlass::gemm::TagToStrideA_t<cutlass::layout::RowMajor> stride_w() const {
        return cutlass::make_cute_packed_stride(cutlass::gemm::TagToStrideA_t<cutlass::layout::RowMajor>{},
                                                make_shape(m, k, 1));
    }

    static void check(cutlass::Status s, const char* what) {
        if (s != cutlass::Status::kSuccess) {
            throw std::string(what) + ": " + cutlassGetStatusString(s);
        }
    }

    template <class S>
    typename S::Gemm::Arguments arguments(int sms) {
        using Gemm = typename S::Gemm;
        using Kernel = typename Gemm::GemmKernel;
        auto stride_b = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, make_shape(n, k, 1));
        auto stride_d = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, make_shape(m, n, 1));
        typename Gemm::Arguments args{};
        args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
        args.problem_shape = shape();
        args.mainloop = {reinterpret_cast<typename S::Mainloop::ElementA*>(wc.p), SparseConfig::fill_layoutA(shape()),
                         x.p, stride_b, reinterpret_cast<typename S::Mainloop::ElementE*>(e.p),
                         SparseConfig::fill_layoutE(shape())};
        args.epilogue.ptr_C = nullptr;
        args.epilogue.ptr_D = d.p;
        args.epilogue.dD = stride_d;
        auto& thread = args.epilogue.thread;
        thread.alpha = 1.0f;
        thread.beta = 0.0f;
        if constexpr (S::kDGelu) {
            thread.aux_ptr = pre.p; // read: the pre-activation dGELU is taken at
            thread.dAux = stride_d;
            thread.dbias_ptr = dbias.p;
        } else {
            thread.bias_ptr = bias ? b.p : nullptr; // null: the bias leaf reads zeros and is skipped
        }
        if constexpr (S::kGeluAux) {
            thread.aux_ptr = aux.p; // written: the pre-activation
            thread.dAux = stride_d;
        }
        args.hw_info = cutlass::KernelHardwareInfo{0, sms};
        return args;
    }
};

struct Result {
    std::string weight, gemm, variant, tile;
    int rows, d_in, d_out;
    std::string error;
    double median_ms = NAN, mean_ms = NAN, tflops = NAN, err = NAN, err_aux = NAN;
    bool ok = false;
};

constexpr double kTolerance = 4e-3;

// Runs S's GEMM on p, checks it against the reference, times it; fills r.
template <class S>
void measure(Problem& p, int sms, int reps, Result& r) {
    using Gemm = typename S::Gemm;
    constexpr bool gelu_aux = S::kGeluAux, dgelu = S::kDGelu;
    try {
        auto args = p.template arguments<S>(sms);
        Gemm gemm;
        Problem::check(gemm.can_implement(args), "can_implement");
        DeviceBuffer<uint8_t> workspace(Gemm::get_workspace_size(args));
        Problem::check(gemm.initialize(args, workspace.p), "initialize");
        CUDA_OK(cudaMemset(p.d.p, 0, size_t(p.m) * p.n * sizeof(Bf16)));
        CUDA_OK(cudaMemset(p.aux.p, 0, size_t(p.m) * p.n * sizeof(Bf16)));
        Problem::check(gemm.run(), "run");
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaDeviceSynchronize());
        size_t count = size_t(p.m) * p.n;
        r.err = rel_err(p.d.p, p.ref.p, p.pre.p, count, gelu_aux ? Want::kGelu : dgelu ? Want::kDGelu : Want::kRef);
        r.err_aux = gelu_aux ? rel_err(p.aux.p, p.ref.p, nullptr, count, Want::kRef)
                    : dgelu  ? dbias_rel_err(p.dbias.p, p.ref.p, p.pre.p, p.m, p.n)
                             : NAN;
        r.ok = r.err <= kTolerance && (!(gelu_aux || dgelu) || r.err_aux <= kTolerance);

        for (int i = 0; i < 10; ++i) {
            gemm.run();
        }
        std::vector<cudaEvent_t> events(reps + 1);
        for (auto& ev : events) {
            CUDA_OK(cudaEventCreate(&ev));
        }
        CUDA_OK(cudaEventRecord(events[0]));
        for (int i = 0; i < reps; ++i) {
            gemm.run();
            CUDA_OK(cudaEventRecord(events[i + 1]));
        }
        CUDA_OK(cudaEventSynchronize(events[reps]));
        CUDA_OK(cudaGetLastError());
        std::vector<float> ms(reps);
        for (int i = 0; i < reps; ++i) {
            CUDA_OK(cudaEventElapsedTime(&ms[i], events[i], events[i + 1]));
        }
        float total;
        CUDA_OK(cudaEventElapsedTime(&total, events[0], events[reps]));
        for (auto& ev : events) {
            cudaEventDestroy(ev);
        }
        std::sort(ms.begin(), ms.end());
        r.median_ms = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
        r.mean_ms = total / reps;
        r.tflops = 2.0 * p.m * p.n * double(p.k) / (r.median_ms * 1e-3) / 1e12;
    } catch (const std::string& e) {
        r.error = e;
        r.ok = false;
    }
}

void print_json(const Result& r) {
    auto num = [](double v) {
        char s[32];
        std::snprintf(s, sizeof s, "%.6g", v);
        return std::isnan(v) ? std::string("null") : std::string(s);
    };
    std::printf("{\"system\": \"cutlass-sparse\", \"weight\": \"%s\", \"gemm\": \"%s\", \"variant\": \"%s\", "
                "\"rows\": %d, \"d_in\": %d, \"d_out\": %d, \"median_ms\": %s, \"mean_ms\": %s, \"tflops\": %s, "
                "\"rel_err\": %s, \"rel_err_aux\": %s, \"ok\": %s, \"tile\": \"%s\"%s%s%s}\n",
                r.weight.c_str(), r.gemm.c_str(), r.variant.c_str(), r.rows, r.d_in, r.d_out, num(r.median_ms).c_str(),
                num(r.mean_ms).c_str(), num(r.tflops).c_str(), num(r.err).c_str(), num(r.err_aux).c_str(),
                r.ok ? "true" : "false", r.tile.c_str(), r.error.empty() ? "" : ", \"error\": \"",
                r.error.c_str(), r.error.empty() ? "" : "\"");
    std::fflush(stdout);
}

int main(int argc, char** argv) {
    int rows = 8192, reps = 50;
    std::vector<std::pair<int, int>> weights; // (dOut, dIn)
    for (int i = 1; i < argc; ++i) {
        int a, b;
        if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) {
            rows = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (std::sscanf(argv[i], "%dx%d", &a, &b) == 2 && a % 32 == 0 && b % 32 == 0) {
            weights.push_back({a, b});
        } else {
            std::fprintf(stderr, "usage: %s [--rows N] [--reps R] [DOUTxDIN ...] (dims multiples of 32)\n", argv[0]);
            return 2;
        }
    }
    if (weights.empty()) { // GPT-2 1558M (d = 1600) and the d = 2560 model: qkv, proj, fc, fc2
        weights = {{4800, 1600}, {1600, 1600}, {6400, 1600}, {1600, 6400},
                   {7680, 2560}, {2560, 2560}, {10240, 2560}, {2560, 10240}};
    }

    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::fprintf(stderr, "sparse_gemm_bench: %s (sm_%d%d, %d SMs), CUTLASS %d.%d.%d, CUDA runtime %d, rows %d, %d reps\n",
                 prop.name, prop.major, prop.minor, prop.multiProcessorCount, CUTLASS_MAJOR, CUTLASS_MINOR,
                 CUTLASS_PATCH, CUDART_VERSION, rows, reps);
    if (prop.major != 9 || prop.minor != 0) {
        std::fprintf(stderr, "sparse_gemm_bench: needs a Hopper GPU (sm_90: wgmma.sp); this is sm_%d%d\n", prop.major,
                     prop.minor);
        return 2;
    }
    int sms = prop.multiProcessorCount;

    // About a second of large GEMMs first (3000 × ~0.3 ms): an idle card starts at low clocks.
    {
        Problem p(4096, 8192, 4096, true, 99, sms);
        Result r;
        measure<BiasA>(p, sms, 3000, r);
    }

    std::vector<Result> results;
    std::vector<std::string> in_place; // the in-place writer against the compressor, per problem
    uint64_t seed = 1;
    for (auto [d_out, d_in] : weights) {
        std::string weight = std::to_string(d_out) + "x" + std::to_string(d_in);
        for (bool fwd : {true, false}) {
            // fwd: M = dOut, K = dIn; dx: M = dIn, K = dOut (dY·W, the 2:4 operand along dOut).
            int m = fwd ? d_out : d_in, k = fwd ? d_in : d_out;
            Problem p(m, rows, k, fwd, seed++, sms);
            std::printf("{\"system\": \"cutlass-sparse-in-place\", \"weight\": \"%s\", \"gemm\": \"%s\", "
                        "\"value_bytes_differing\": %zu, \"metadata_bytes_differing\": %zu}\n",
                        weight.c_str(), fwd ? "fwd" : "dx", p.value_differences, p.metadata_differences);
            in_place.push_back(weight + " " + (fwd ? "fwd" : "dx") + ": values " +
                               (p.value_differences ? std::to_string(p.value_differences) + " bytes differ" : "equal") +
                               ", metadata " +
                               (p.metadata_differences ? std::to_string(p.metadata_differences) + " bytes differ"
                                                       : "equal"));
            auto run = [&](auto kernel, const char* variant, const char* tile) {
                Result r{weight, fwd ? "fwd" : "dx", variant, tile, rows, k, m, {}};
                measure<decltype(kernel)>(p, sms, reps, r);
                print_json(r);
                results.push_back(r);
            };
            run(BiasA{}, fwd ? "bias" : "plain", kTileA);
            run(BiasB{}, fwd ? "bias" : "plain", kTileB);
            if (fwd) {
                run(GeluA{}, "gelu-aux", kTileA);
                run(GeluB{}, "gelu-aux", kTileB);
            } else if (d_in == 4 * d_out) {
                run(DGeluA{}, "dgelu-dbias", kTileA);
                run(DGeluB{}, "dgelu-dbias", kTileB);
            }
        }
    }

    std::printf("\nCUTLASS 2:4 sparse GEMM (bf16 in, fp32 accumulate, bf16 out), rows = %d, median of %d; TFLOP/s are "
                "dense-equivalent (2·rows·d_in·d_out / t)\ntile A = %s, tile B = %s\n\n", rows, reps, kTileA, kTileB);
    std::printf("%-12s %-4s %-9s %6s %6s  %9s %7s  %9s %7s  %9s %9s  %s\n", "weight", "gemm", "variant", "d_in",
                "d_out", "A ms", "A TF/s", "B ms", "B TF/s", "rel_err", "aux_err", "check");
    bool all_ok = true;
    for (size_t i = 0; i < results.size(); i += 2) { // tiles A and B of one (weight, gemm, variant) are adjacent
        const Result &a = results[i], &b = results[i + 1];
        bool ok = a.ok && b.ok;
        all_ok = all_ok && ok;
        std::printf("%-12s %-4s %-9s %6d %6d  %9.4f %7.1f  %9.4f %7.1f  %9.2e %9.2e  %s\n", a.weight.c_str(),
                    a.gemm.c_str(), a.variant.c_str(), a.d_in, a.d_out, a.median_ms, a.tflops, b.median_ms, b.tflops,
                    std::max(a.err, b.err), std::max(a.err_aux, b.err_aux),
                    ok ? "ok" : (a.error + " " + b.error + " FAILED").c_str());
    }
    std::printf("\nCUTLASS's compressed weight written in place by our rule (write_operands_in_place) against its "
                "compressor's bytes:\n");
    for (const auto& line : in_place) {
        std::printf("  %s\n", line.c_str());
    }
    std::printf("\n%s (tolerance %.0e on ‖D − ref‖/‖ref‖, and in aux_err on the pre-activation written (gelu-aux) or "
                "the bias gradient (dgelu-dbias))\n",
                all_ok ? "all checks passed" : "SOME CHECKS FAILED", kTolerance);
    return all_ok ? 0 : 1;
}
