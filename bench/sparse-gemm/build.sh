#!/usr/bin/env bash
# Compiles sparse_gemm_bench.cu (CUTLASS's Hopper 2:4 GEMM on SLoPe's shapes, README.md) for sm_90a against CUTLASS's
# headers in .tools/cutlass (fetched from PyPI by `./slope tools`) into OUT (default device-bundle/target/
# sparse_gemm_bench), where build-bundle.sh picks it up. Without nvcc or the headers it builds nothing and says why
# (exit 0; SLOPE_REQUIRE_NVCC=1, as in CI, makes that a failure): the bundle then carries no binary and device.sh's
# sparsegemm phase says so. Rebuilds only when the source or this script is newer than OUT. About 90 s on 2 cores.
# Usage: bench/sparse-gemm/build.sh [OUT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$here/sparse_gemm_bench.cu"
out="${1:-$root/device-bundle/target/sparse_gemm_bench}"
cutlass="$root/.tools/cutlass"

source "$root/engine-cuda/src/main/cuda/find-nvcc.sh"

missing=""
nvcc="$(find_nvcc "$root")" || missing="nvcc (with its include folder)"
for h in include/cutlass/version.h tools/util/include/cutlass/util/packed_stride.hpp; do
    [[ -f "$cutlass/$h" ]] || missing="${missing:+$missing, }$cutlass/$h"
done
if [[ -n "$missing" ]]; then
    rm -f "$out"
    if [[ "${SLOPE_REQUIRE_NVCC:-0}" == 1 ]]; then
        echo "sparse-gemm: cannot build the CUTLASS 2:4 GEMM benchmark, missing: $missing (./slope tools)" >&2
        exit 1
    fi
    echo "sparse-gemm: no CUTLASS 2:4 GEMM benchmark (missing: $missing); ./slope tools installs nvcc and the headers" >&2
    exit 0
fi
if [[ -f "$out" && "$out" -nt "$src" && "$out" -nt "$0" ]]; then
    exit 0
fi
mkdir -p "$(dirname "$out")"
echo "sparse-gemm: compiling $(basename "$src") for sm_90a with $nvcc (CUTLASS $(sed -n \
    's/^#define CUTLASS_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$cutlass/include/cutlass/version.h" | paste -sd.))" >&2
start=$SECONDS
# sm_90a only: wgmma.sp has no PTX for other GPUs. cudart is linked statically (nvcc's default) so that the binary
# needs only the driver; stripped and its fatbin compressed for the bundle's 48 MiB.
"$nvcc" -std=c++17 -O3 -DNDEBUG -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
    -I"$cutlass/include" -I"$cutlass/tools/util/include" -L"$(dirname "$nvcc")/../lib" -Xfatbin -compress-all \
    -Xlinker -s \
    -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "sparse-gemm: built $out ($(stat -c %s "$out") bytes) in $((SECONDS - start)) s" >&2
