#!/usr/bin/env bash
# Packs the device bundle: a jlink runtime (the GPU machines have no Java), the jars and the GPU test runner, as one
# tar.xz that the device tool can carry. Fails if the bundle reaches 48 MiB (the device tool moves at most 64 MiB and
# the data for a run travels with it) or if the engine-cuda jar carries no kernels.
set -euo pipefail
jars="$1"
out="$2"
jlink="${3:-jlink}" # the JDK that runs Maven: a jlink on PATH may be older than the jars' Java 25
limit=$((48 * 1024 * 1024))
work="$(dirname "$out")/slope-device"
rm -rf "$work" "$out"
mkdir -p "$work/lib"

# unzip names the member itself (no `| grep -q`: under pipefail its early exit fails the pipe with SIGPIPE).
if ! unzip -l "$jars"/slope-engine-cuda-*[0-9T].jar 'io/slope/cuda/slope_kernels.fatbin' >/dev/null 2>&1; then
    echo "device bundle: the engine-cuda jar has no kernels (built without nvcc); install nvcc (./slope tools) and rebuild" >&2
    exit 1
fi
# The runtime's modules: what the jars use, as jdeps reads it off their classes (picocli loads every subcommand, so a
# module that any command names, java.sql for one, must be there), plus jdk.zipfs, which the JUnit launcher reaches as
# a file-system provider (scanning the test jars), not by a class reference that jdeps could see. Less java.desktop:
# only jackson-databind names it, as optional (`requires static`, for java.beans annotations), and it is 15 MB of
# runtime against the 48 MiB limit. Plus what the service's jars (.device-service: the workers, the API, S3Proxy; not
# in this module's dependencies) need beyond those, as jdeps reads them, for device.sh's service phase:
# jdk.management (the Temporal SDK's worker), java.naming (Jetty, logback, HikariCP, pgjdbc), java.security.jgss
# (pgjdbc, Jetty), jdk.jfr (netty, Micronaut), jdk.httpserver (S3Proxy's metrics), jdk.net (Apache HttpCore): 1.7 MB.
jdeps="$(dirname "$jlink")/jdeps"
modules="$("$jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps "$jars"/*.jar | sed 's/,java\.desktop//')"
modules="$modules,jdk.zipfs,jdk.management,java.naming,java.security.jgss,jdk.jfr,jdk.httpserver,jdk.net"
echo "device bundle: runtime modules $modules" >&2
"$jlink" --add-modules "$modules" --compress=zip-9 --strip-debug --no-header-files --no-man-pages --output "$work/runtime"
for j in "$jars"/*.jar; do
    case "$(basename "$j")" in
        jcuda-natives-*)
            # Only the driver binding: the runtime, NVRTC and PTX-compiler bindings link CUDA 12 libraries the
            # machines do not have, and the PTX compiler alone is 24 MB.
            tmp="$(mktemp -d)"
            (cd "$tmp" && unzip -q "$j" 'lib/libJCudaDriver-*' 'META-INF/MANIFEST.MF' && zip -q -r -X \
                "$work/lib/$(basename "$j")" lib META-INF)
            rm -rf "$tmp"
            ;;
        *) cp "$j" "$work/lib/" ;;
    esac
done
# CUTLASS's 2:4 GEMM benchmark (bench/sparse-gemm; device.sh sparsegemm) as bin/sparse_gemm_bench, about 1 MB; its
# build script compiles it when nvcc and CUTLASS's headers (./slope tools) are here, and otherwise says why and leaves
# it out.
bench="$(dirname "$out")/sparse_gemm_bench"
bash "$(dirname "$0")/../bench/sparse-gemm/build.sh" "$bench"
if [[ -f "$bench" ]]; then
    mkdir -p "$work/bin" && cp "$bench" "$work/bin/"
fi
tar -C "$(dirname "$work")" -cf - slope-device | xz -6 -T2 >"$out.tmp"
mv "$out.tmp" "$out"
size=$(stat -c %s "$out")
echo "device bundle: $out, $((size / 1024 / 1024)) MiB ($size bytes; limit 48 MiB)" >&2
if ((size >= limit)); then
    echo "device bundle: $size bytes is over the 48 MiB limit" >&2
    exit 1
fi
