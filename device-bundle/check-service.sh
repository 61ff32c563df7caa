#!/usr/bin/env bash
# Rehearses device.sh's service phase on this machine without a GPU: the staged .device, .device-service and
# .device-temporal as the device gets them, SERVICE_BACKEND=cpu and a char-level spec small enough for the CPU. As root
# it runs in a mount namespace of its own that hides what the device lacks (this machine's Java, Maven repository,
# PostgreSQL with libpq and ICU, Temporal CLI, time zone data) with PATH cut to /usr/bin:/bin, so only the carried
# pieces can serve. Prints the phase's summary and fails unless the run succeeded after its GPU worker was killed.
# Usage: device-bundle/check-service.sh   (after stage.sh and stage-service.sh)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for staged in .device/device.sh .device-service/slope-service.tar.xz .device-temporal/temporal.xz; do
    [[ -f "$root/$staged" ]] || { echo "check-service: $staged is missing: run stage.sh and stage-service.sh" >&2; exit 1; }
done
work="$(mktemp -d)"
chmod 755 "$work" # Postgres runs as nobody under root
cp "$root/.device/tinyshakespeare.txt" "$work/"
cat >"$work/spec.json" <<'SPEC'
{
  "name": "service-check",
  "model": {"preset": "tiny"},
  "sparsity": {"mode": "slope"},
  "training": {"steps": 240, "batchSize": 4, "seed": 1},
  "data": {"corpus": ["tinyshakespeare.txt"], "tokenizer": "char", "valFraction": 0.1},
  "eval": {"every": 80, "maxWindows": 8},
  "threads": 1
}
SPEC
export SLOPE_DEVICE_CPU=1 SERVICE_BACKEND=cpu SERVICE_SPEC="$work/spec.json" SERVICE_CHUNK_STEPS=80 \
    SERVICE_KILL_STEP=120 OUT="$work/out"
phase=("$root/.device/device.sh" service)
if [[ "$(id -u)" == 0 ]]; then
    hide='for dir in /usr/lib/jvm /usr/lib/postgresql /usr/share/postgresql /usr/share/zoneinfo /root/.m2 /root/.pyenv; do
              [[ -d "$dir" ]] && mount -t tmpfs none "$dir"
          done
          for lib in /usr/lib/x86_64-linux-gnu/{libpq,libicu}*.so.*.*; do mount --bind /dev/null "$lib"; done
          PATH=/usr/bin:/bin exec "$@"'
    unshare -m --propagation private bash -c "$hide" hide "${phase[@]}" || status=$?
else
    echo "check-service: not root, so this machine's own servers are not hidden" >&2
    "${phase[@]}" || status=$?
fi
[[ -f "$work/out/service.json" ]] \
    || { echo "check-service: the phase wrote no summary (exit ${status:-0}); logs in $work/out" >&2; exit 1; }
python3 - "$work/out/service.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["status"] == "SUCCEEDED", s["status"]
assert s["kill"] and s["kill"]["steps_done"] > s["kill"]["last_checkpoint"], s["kill"]
assert any(e["path"].startswith("hf/") for e in s["exports"]), s["exports"]
print(f"check-service: run {s['run_id']} SUCCEEDED on the carried pieces, its GPU worker SIGKILLed at step "
      f"{s['kill']['steps_done']} (checkpoint {s['kill']['last_checkpoint']}); final {s['final_val_loss']}")
PY
echo "check-service: summary and logs in $work/out"
exit "${status:-0}"
