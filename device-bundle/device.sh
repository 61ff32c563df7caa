#!/usr/bin/env bash
# Runs on the GPU machine (no Java there): unpacks the device bundle and runs one phase, writing logs, JUnit XML and a
# summary JSON under $OUT. Phases: parity (the GPU tests against the CPU reference). Usage: device.sh PHASE [COMMIT]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
phase="${1:-parity}"
commit="${2:-$(cat "$here/COMMIT" 2>/dev/null || echo unknown)}"
out="${OUT:-$here/out}"
mkdir -p "$out"
work=/tmp/slope-device-run
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xJf "$here/slope-device.tar.xz" || exit 1
root="$work/slope-device"
java="$root/runtime/bin/java"
cp="$(ls "$root"/lib/*.jar | grep -v junit-platform-console-standalone | paste -sd:)"
launcher="$(ls "$root"/lib/junit-platform-console-standalone-*.jar)"
export SLOPE_CUDA_LIBS="${SLOPE_CUDA_LIBS:-/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:/usr/local/cuda/lib64}"
jvm=(--enable-native-access=ALL-UNNAMED -Xmx16g)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/nvidia-smi.txt" 2>&1
"$java" "${jvm[@]}" -cp "$cp" io.slope.cuda.DeviceReport "$commit" >"$out/device.json" 2>"$out/device.err" \
    || cat "$out/device.err"
cat "$out/device.json"

case "$phase" in
    parity)
        timeout 480 "$java" "${jvm[@]}" -jar "$launcher" execute --class-path "$cp" --select-package io.slope.cuda \
            --reports-dir "$out/junit" --details=tree --disable-banner --disable-ansi-colors >"$out/parity.log" 2>&1
        rc=$?
        grep -h '^parity \|^masks \|^in-place\|^cuSPARSELt opaque\|^attention T=' "$out/parity.log" \
            | tee "$out/parity-summary.txt"
        grep -n -A12 '✘' "$out/parity.log" | grep -v '^[0-9]*-\s*at org.junit\|java.base/' | head -150
        tail -n 14 "$out/parity.log"
        echo "parity exit code $rc"
        exit "$rc"
        ;;
    *)
        echo "unknown phase $phase (parity)" >&2
        exit 2
        ;;
esac
