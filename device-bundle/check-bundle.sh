#!/usr/bin/env bash
# Checks the device bundle without a GPU, as CI does after building it: its jlink runtime starts the CLI (`--help`,
# which loads every subcommand, so a module missing from the runtime fails here), trains a tiny model on the CPU
# backend through every stage to its JSON summary and exports, and runs device.sh's gpurun logic (gpurun.sh) on the CPU.
# Usage: device-bundle/check-bundle.sh [BUNDLE.tar.xz]   (default: device-bundle/target/slope-device.tar.xz)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="$(realpath "${1:-$here/target/slope-device.tar.xz}")"
[[ -f "$bundle" ]] || { echo "check-bundle: $bundle is missing; build it: ./mvnw -pl device-bundle -am verify -DskipTests" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xJf "$bundle"
root="$work/slope-device"
slope() {
    "$root/runtime/bin/java" --enable-native-access=ALL-UNNAMED -Xmx1g -cp "$root/lib/*" io.slope.cli.SlopeCli "$@"
}

slope --help >"$work/help.txt"
grep -q 'train' "$work/help.txt" || { cat "$work/help.txt" >&2; echo "check-bundle: --help lists no train" >&2; exit 1; }

# This script as the corpus: any text of a few kB does for a char-level model.
cp "${BASH_SOURCE[0]}" "$work/corpus.txt"
cat >"$work/tiny.json" <<'SPEC'
{
  "name": "bundle-check",
  "model": {"preset": "tiny"},
  "sparsity": {"mode": "slope"},
  "training": {"steps": 4, "batchSize": 2, "seed": 1},
  "data": {"corpus": ["corpus.txt"], "tokenizer": "char", "valFraction": 0.2},
  "eval": {"every": 4, "maxWindows": 2},
  "backend": "cpu"
}
SPEC
(cd "$work" && slope train --spec tiny.json --out "$work/run" >"$work/train.txt" 2>"$work/train.err") \
    || { cat "$work/train.err" >&2; echo "check-bundle: slope train failed in the bundle's runtime" >&2; exit 1; }
summary="$(tail -n 1 "$work/train.txt")"
python3 - "$summary" <<'PY'
import json, math, sys
s = json.loads(sys.argv[1])
assert s["steps"] == 4 and s["backend"].startswith("cpu"), s
assert all(math.isfinite(s[k]) for k in ("val_loss_sparse", "val_loss_adapters", "val_loss_merged")), s
PY
[[ -f "$work/run/hf/model.safetensors" && -f "$work/run/slope/manifest.json" ]] \
    || { echo "check-bundle: the exports are missing from $work/run" >&2; exit 1; }

# The logic of device.sh's gpurun phase on the CPU: three runs of one spec, one SIGKILLed after step 6 (past the step-4
# checkpoint) and resumed, compared (bit for bit here); its transformers check needs torch and is left to the device.
cat >"$work/gpurun.json" <<'SPEC'
{
  "name": "gpurun-check",
  "model": {"preset": "tiny"},
  "sparsity": {"mode": "slope"},
  "adapters": {"start": 0.75},
  "training": {"steps": 12, "batchSize": 2, "seed": 1},
  "data": {"corpus": ["corpus.txt"], "tokenizer": "char", "valFraction": 0.2},
  "eval": {"every": 0, "maxWindows": 2},
  "checkpointEvery": 4,
  "backend": "cpu",
  "threads": 1
}
SPEC
GPURUN_HF=0 GPURUN_TIMEOUT=120 bash "$here/gpurun.sh" "$work/gpurun.json" "$work/gpurun" "$work/gpurun-out" 6 -- \
    "$root/runtime/bin/java" --enable-native-access=ALL-UNNAMED -Xmx1g -cp "$root/lib/*" io.slope.cli.SlopeCli \
    >"$work/gpurun.txt" 2>&1 \
    || { cat "$work/gpurun.txt" >&2; echo "check-bundle: the gpurun logic failed" >&2; exit 1; }
echo "check-bundle: $(basename "$bundle"): --help, a 4-step CPU run and the gpurun logic (kill, resume, compare)" \
    "in its runtime: ok ($summary)"
