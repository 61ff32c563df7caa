#!/usr/bin/env bash
# Issue 14, a real run end to end: one spec trained three times at once by `slope train` (the SLOPE command given after
# `--`): a and b uninterrupted, c SIGKILLed once it has trained step KILL_STEP and committed a periodic checkpoint, then
# continued with --resume. Then compare_resume.py (c against a, measured against a vs b, the run-to-run difference)
# and hf_check.py (transformers loads a's hf/ export and recomputes its val_loss_merged on the same windows).
# Then greedy samples from a (`slope sample --form inference --backend $GPURUN_SAMPLE_BACKEND`, default cpu). Writes
# under OUT: gpurun-{a,b,c}.log (c: the killed part, then the resume), gpurun-compare.json, gpurun-hf.json,
# gpurun-sample.txt.
# Exits 0 when every run finished and both checks pass. device.sh runs it on the GPU; check-bundle.sh with a CPU spec
# and GPURUN_HF=0 (no transformers check: CI has no torch).
# Usage: gpurun.sh SPEC WORK OUT KILL_STEP -- SLOPE_COMMAND...   (the spec's corpus paths relative to its folder)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
spec="$1" work="$2" out="$3" kill_step="$4"
shift 4
[[ "${1:-}" == "--" ]] || { echo "usage: gpurun.sh SPEC WORK OUT KILL_STEP -- SLOPE_COMMAND..." >&2; exit 2; }
shift
slope=("$@")
limit="${GPURUN_TIMEOUT:-240}"
mkdir -p "$work" "$out"
rm -rf "$work/a" "$work/b" "$work/c"
status=0

timeout "$limit" "${slope[@]}" train --spec "$spec" --out "$work/a" --log-every 20 >"$out/gpurun-a.log" 2>&1 &
aPid=$!
timeout "$limit" "${slope[@]}" train --spec "$spec" --out "$work/b" --log-every 20 >"$out/gpurun-b.log" 2>&1 &
bPid=$!
# No `timeout` around c: $! is then the JVM itself, which is what gets the SIGKILL.
"${slope[@]}" train --spec "$spec" --out "$work/c" --log-every 20 >"$out/gpurun-c.log" 2>&1 &
cPid=$!

# Kill c once it has trained past KILL_STEP (0-based) with a committed checkpoint after step 0 behind it.
killed=""
for _ in $(seq 1 $((limit * 10))); do
    kill -0 "$cPid" 2>/dev/null || break
    lines=$(cat "$work/c/metrics.jsonl" 2>/dev/null | wc -l)
    committed=$(ls -d "$work"/c/checkpoints/*/COMMIT 2>/dev/null | grep -vc '/0000000000/COMMIT$')
    if ((lines > kill_step && committed > 0)); then
        kill -9 "$cPid" && killed="$lines"
        break
    fi
    sleep 0.1
done
[[ -z "$killed" ]] && kill -9 "$cPid" 2>/dev/null # out of time without getting there: not left running
wait "$cPid"
rc=$?
killedLines=$(cat "$work/c/metrics.jsonl" 2>/dev/null | wc -l)
if [[ -z "$killed" ]]; then
    echo "gpurun: c was not killed (exit $rc, $(cat "$work/c/metrics.jsonl" 2>/dev/null | wc -l) steps logged)" \
        | tee -a "$out/gpurun-c.log"
    status=1
else
    echo "gpurun: c SIGKILLed with $killedLines steps logged (exit $rc); checkpoints:" \
        "$(ls "$work/c/checkpoints" | paste -sd' ')" | tee -a "$out/gpurun-c.log"
fi
echo "gpurun: resuming c" >>"$out/gpurun-c.log"
timeout "$limit" "${slope[@]}" train --resume "$work/c" --log-every 20 >>"$out/gpurun-c.log" 2>&1
rc=$?
echo "gpurun: the resume exited $rc" | tee -a "$out/gpurun-c.log"
((rc == 0)) || status=1
wait "$aPid"
aRc=$?
wait "$bPid"
bRc=$?
echo "gpurun: a exited $aRc, b exited $bRc"
((aRc == 0 && bRc == 0)) || status=1
tail -n 1 "$out/gpurun-a.log" "$out/gpurun-b.log" "$out/gpurun-c.log"

python3 "$here/compare_resume.py" "$work/a" "$out/gpurun-a.log" "$work/b" "$out/gpurun-b.log" "$work/c" \
    "$out/gpurun-c.log" "${killed:+$killedLines}" >"$out/gpurun-compare.json" || status=1
cat "$out/gpurun-compare.json"
if [[ "${GPURUN_HF:-1}" == 1 ]]; then
    timeout 120 python3 "$here/hf_check.py" "$work/a" "$out/gpurun-a.log" >"$out/gpurun-hf.json" || status=1
    cat "$out/gpurun-hf.json"
else
    echo "gpurun: the transformers check is skipped (GPURUN_HF=0)"
fi
# Greedy samples from a's final checkpoint in its inference form with the run's backend (KV-cache decoding and the
# fused adapted layers on the GPU in device.sh).
timeout 120 "${slope[@]}" sample --checkpoint "$work/a" --prompt "ROMEO:" --max-tokens 60 \
    --backend "${GPURUN_SAMPLE_BACKEND:-cpu}" --form inference >"$out/gpurun-sample.txt" 2>&1 || status=1
cat "$out/gpurun-sample.txt"
echo "gpurun: status $status"
exit $status
