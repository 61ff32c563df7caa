// The project's CUDA kernels, one per Backend operation (llm.c style), checked against the CPU backend by the parity
// tests in engine-cuda. Every float tensor argument comes with a storage code (DT_*) so one kernel serves the fp32
// master weights, the bf16 activations and the fp64 accumulators; the code is uniform across a launch, so the branch
// costs nothing measurable next to the memory traffic. No float atomics anywhere: every reduction runs in a fixed
// order, so results do not depend on scheduling.
//
// One file per layer or concept, as llm.c's llmc/; this translation unit includes them all, so the fatbin is one.
#include "common.cuh"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "reductions.cuh"
#include "layernorm.cuh"
#include "cross_entropy.cuh"
#include "attention.cuh"
#include "kv_cache.cuh"
#include "optimizer.cuh"
#include "nm_sparse.cuh"
#include "compressed_metadata.cuh"
#include "inference_form.cuh"
#include "attention_tensor_cores.cuh"
#include "two_four_decode.cuh"
