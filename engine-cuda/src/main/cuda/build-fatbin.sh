#!/usr/bin/env bash
# Compiles the project's CUDA kernels into one fatbin: sm_80 and sm_90a machine code plus compute_90 PTX.
# nvcc is looked up as $NVCC, then on PATH, then /usr/local/cuda/bin, then the project-local PyPI install
# (.tools/cuda, made by `./slope tools` or CI). Without nvcc the jar carries no kernels and says so; the CUDA backend
# then refuses to start and names this fix. SLOPE_REQUIRE_NVCC=1 (CI) turns a missing nvcc into a failure.
set -euo pipefail
src="$1"
out="$2"
root="$(cd "$(dirname "$0")/../../../.." && pwd)"

source "$(dirname "$0")/find-nvcc.sh"

if ! nvcc="$(find_nvcc "$root")"; then
    rm -f "$out"
    if [[ "${SLOPE_REQUIRE_NVCC:-0}" == 1 ]]; then
        echo "engine-cuda: nvcc not found (looked at \$NVCC, PATH, /usr/local/cuda/bin, $root/.tools/cuda) and SLOPE_REQUIRE_NVCC=1" >&2
        exit 1
    fi
    echo "engine-cuda: nvcc not found: building the CPU path only; the CUDA backend will refuse to start." \
        "Install nvcc with ./slope tools (PyPI nvidia-cuda-nvcc into .tools/cuda) and rebuild." >&2
    exit 0
fi
# Up to date when newer than this script and every kernel source (the .cu and the .cuh files it includes).
stale=0
for f in "$0" "$(dirname "$src")"/*.cu "$(dirname "$src")"/*.cuh; do
    [[ -f "$out" && "$out" -nt "$f" ]] || stale=1
done
if [[ "$stale" == 0 ]]; then
    exit 0
fi
mkdir -p "$(dirname "$out")"
cuda_root="$(cd "$(dirname "$nvcc")/.." && pwd)"
# The PyPI layout keeps cicc under nvvm/bin next to bin/; nvcc finds it through its own nvcc.profile.
"$nvcc" -fatbin -O3 -std=c++17 -lineinfo \
    -I"$cuda_root/include" \
    -gencode=arch=compute_80,code=sm_80 \
    -gencode=arch=compute_90a,code=sm_90a \
    -gencode=arch=compute_90,code=compute_90 \
    -Xptxas=-warn-spills \
    -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "engine-cuda: kernels built with $nvcc → $(basename "$out") ($(stat -c %s "$out") bytes)" >&2
