# Sourced by the build scripts that need nvcc: find_nvcc ROOT prints the first nvcc with its include folder beside it,
# looked up as $NVCC, then on PATH, then /usr/local/cuda/bin, then the project-local PyPI install (ROOT/.tools/cuda,
# made by `./slope tools` or CI); it fails when there is none.
find_nvcc() {
    local root="$1" c
    for c in "${NVCC:-}" "$(command -v nvcc 2>/dev/null || true)" /usr/local/cuda/bin/nvcc \
            "$root/.tools/cuda/nvidia/cu13/bin/nvcc"; do
        if [[ -n "$c" && -x "$c" && -f "$(dirname "$c")/../include/cuda_runtime_api.h" ]]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
