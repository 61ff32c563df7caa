#!/usr/bin/env bash
# Compiles the cuDNN attention shim (slope_cudnn.cpp, ADR 008) into a shared library the jar carries, against
# cudnn-frontend's, cuDNN's and NVRTC's headers in .tools/cudnn (fetched from PyPI by `./slope tools`) and the CUDA
# headers beside nvcc. cuDNN itself is loaded at run time, so nothing is linked. Without the headers or g++ the jar
# carries no shim and the CUDA backend runs its own attention kernels, saying why; SLOPE_REQUIRE_NVCC=1 (CI) turns a
# missing header set into a failure.
set -euo pipefail
src="$1"
out="$2"
root="$(cd "$(dirname "$0")/../../../.." && pwd)"
headers="$root/.tools/cudnn"

source "$root/engine-cuda/src/main/cuda/find-nvcc.sh"

missing=""
command -v g++ >/dev/null 2>&1 || missing="g++"
if nvcc="$(find_nvcc "$root")"; then
    cuda="$(cd "$(dirname "$nvcc")/../include" && pwd)"
else
    missing="${missing:+$missing, }the CUDA headers (nvcc's include folder)"
fi
for h in frontend/include/cudnn_frontend.h cudnn/include/cudnn_graph.h nvrtc/include/nvrtc.h; do
    [[ -f "$headers/$h" ]] || missing="${missing:+$missing, }$headers/$h"
done
if [[ -n "$missing" ]]; then
    rm -f "$out"
    if [[ "${SLOPE_REQUIRE_NVCC:-0}" == 1 ]]; then
        echo "engine-cuda: cannot build the cuDNN shim, missing: $missing (./slope tools installs the headers)" >&2
        exit 1
    fi
    echo "engine-cuda: no cuDNN shim (missing: $missing); the CUDA backend will use its own attention kernels." \
        "Install the headers with ./slope tools and rebuild." >&2
    exit 0
fi
if [[ -f "$out" && "$out" -nt "$src" && "$out" -nt "$0" ]]; then
    exit 0
fi
mkdir -p "$(dirname "$out")"
# libstdc++ linked statically: the library loads on hosts with an older C++ runtime than this one. Its symbols stay
# private (--exclude-libs, -Bsymbolic, only slope_cudnn_* exported): cuDNN brings the host's libstdc++.so.6 into the process, and a call of ours
# bound to that copy frees what our copy allocated ("free(): invalid pointer" in std::locale, seen on an H200).
g++ -std=c++17 -O2 -fPIC -shared -s -DNV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING \
    -I"$headers/frontend/include" -I"$headers/cudnn/include" -I"$headers/nvrtc/include" -I"$cuda" \
    -static-libstdc++ -static-libgcc -Wl,--exclude-libs,ALL -Wl,-Bsymbolic -Wl,--no-undefined \
    -Wl,--version-script=<(printf '{ global: slope_cudnn_*; local: *; };\n') \
    -o "$out.tmp" "$src" -ldl
mv "$out.tmp" "$out"
echo "engine-cuda: cuDNN shim built → $(basename "$out") ($(stat -c %s "$out") bytes)" >&2
