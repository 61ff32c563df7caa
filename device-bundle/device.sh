#!/usr/bin/env bash
# Runs on the GPU machine (no Java there): unpacks the device bundle and runs one phase, writing logs, JUnit XML and a
# summary JSON under $OUT. Phases: parity (the GPU tests against the CPU reference; kernelparity: the per-kernel ones),
# nccl (the NCCL collective and 2-rank data-parallel tests; their two-GPU cases need two GPUs), ranks (slope train
# --ranks 2 vs 1 with a rank killed and the run resumed on one rank, and slope bench scaling; two GPUs), train200 (200
# char-level SLoPe steps on the CPU and the GPU, compared; train200dense the same in dense mode), bench (per-GEMM and whole-step timings), attention (cuDNN's
# attention vs ours, alone and in GPT-2-small steps), steps (whole optimizer steps of ours and PyTorch's at 124M, 350M
# and 1558M into one step-<UTC>.jsonl, and its table; steps124 and steps1558 its short forms at 124M and 1558M; steps2560 the d = 2560 shape;
# profile124 the per-operation profile of a 124M dense and SLoPe step; profile1558 the same at 1558M), kernels (Nsight Compute's per-kernel times of
# one step), sparsegemm (CUTLASS's Hopper 2:4 GEMM and its GELU+aux epilogue beside cuSPARSELt and cuBLASLt per layer
# shape: bench/sparse-gemm), infer (slope bench infer: prefill and decoding, dense vs SLoPe), gpurun (issue 14's GPT-2-tokenized cuda
# run through every stage, killed and resumed, its hf/ export checked by transformers), quality (issue 18: bench/quality
# gutenberg, every mode at equal tokens on the Gutenberg books split by book), qualityref (the same data and schedule
# in stock PyTorch, dense and static 2:4: the check on quality's dense runs), service (issue 14: the whole service,
# slope up and a GPU worker, runs a cuda run submitted over REST, its GPU worker SIGKILLed mid-chunk and replaced:
# service.sh).
# The service phase needs more than one call can carry (64 MiB): device-bundle/stage-service.sh stages .device-service
# (the service's jars and PostgreSQL, < 60 MiB) and .device-temporal (the Temporal CLI, 28 MiB), each carried by a
# call of its own first; a folder carried once stays on the warm machine while later calls do not name it (assumed:
# the device tool says so, untested), and a machine that went back takes all three again:
#   run(command="true", carry=[".device-service"])
#   run(command="true", carry=[".device-temporal"])
#   run(command=".device/device.sh service", carry=[".device"])
# SLOPE_DEVICE_CPU=1 runs a phase on a machine without a GPU (no nvidia-smi, no DeviceReport): only the service phase
# with SERVICE_BACKEND=cpu means anything there (device-bundle/check-service.sh).
# Usage: device.sh PHASE...
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
phases=("${@:-parity}")
commit="$(cat "$here/COMMIT" 2>/dev/null || echo unknown)"
out="${OUT:-$here/out}"
mkdir -p "$out"
work=/tmp/slope-device-run
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xJf "$here/slope-device.tar.xz" || exit 1
root="$work/slope-device"
java="$root/runtime/bin/java"
cp="$(ls "$root"/lib/*.jar | grep -v junit-platform-console-standalone | paste -sd:)"
launcher="$(ls "$root"/lib/junit-platform-console-standalone-*.jar)"
nvidia=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
export SLOPE_CUDA_LIBS="${SLOPE_CUDA_LIBS:-$nvidia/cusparselt/lib:$nvidia/nccl/lib:/usr/local/cuda/lib64}"
# cuDNN opens its engine libraries and NVRTC (its attention kernels are compiled at run time) by name.
export LD_LIBRARY_PATH="$nvidia/cudnn/lib:$nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# NVLink multicast (NVLS) off, whatever the caller's environment says: on shared hosts it can take the GPUs out of
# service (ADR 041); the engine never calls the multicast APIs either.
export NCCL_NVLS_ENABLE=0
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
jvm=(--enable-native-access=ALL-UNNAMED -Xmx16g)
# slope bench step (GPT-2 124M, protocol b, 5 timed steps unless told), tagged with the bundle's commit; the 1558M
# weights are drawn on the host in fp64 (12.5 GB), hence its larger heap.
export SLOPE_COMMIT="$commit"
step=("$java" "${jvm[@]}" -cp "$cp" io.slope.cli.SlopeCli bench step)
step_xl=("$java" --enable-native-access=ALL-UNNAMED -Xmx80g -cp "$cp" io.slope.cli.SlopeCli bench step)
infer_xl=("$java" --enable-native-access=ALL-UNNAMED -Xmx80g -cp "$cp" io.slope.cli.SlopeCli bench infer)

# Facts for the summary live in $work; what comes back ($OUT, at most 8 files) is logs, JUnit XML and summary.json.
if [[ "${SLOPE_DEVICE_CPU:-0}" == 1 ]]; then
    echo "{\"commit\": \"$commit\", \"device\": \"none: SLOPE_DEVICE_CPU=1\"}" >"$work/device.json"
else
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv,noheader \
        | tee "$work/nvidia-smi.txt"
    "$java" "${jvm[@]}" -cp "$cp" io.slope.cuda.DeviceReport "$commit" >"$work/device.json" || exit 1
fi
cat "$work/device.json"

# The GPU tests SELECTORS… run by JUnit's console launcher into REPORTS, logged to $out/NAME.log; prints the failures
# and the end of the log; returns the launcher's exit code. Usage: gpu_tests NAME REPORTS SELECTORS...
gpu_tests() {
    local name="$1" reports="$2"
    shift 2
    timeout 400 "$java" "${jvm[@]}" -jar "$launcher" execute --class-path "$cp" "$@" --reports-dir "$reports" \
        --details=tree --disable-banner --disable-ansi-colors >"$out/$name.log" 2>&1
    local rc=$?
    rm -f "$reports/TEST-junit-vintage.xml" "$reports/TEST-junit-platform-suite.xml"
    grep -n -A12 '✘' "$out/$name.log" | grep -v '^[0-9]*-\s*at org.junit\|java.base/' | head -80
    tail -n 14 "$out/$name.log"
    echo "$name exit code $rc"
    return $rc
}

status=0
for phase in "${phases[@]}"; do
    phase_start=$SECONDS
    case "$phase" in
        parity)
            gpu_tests parity "$out/junit" --select-package io.slope.cuda --exclude-classname '^io\.slope\.cuda\.Nccl.*' \
                || status=1
            grep -h '^parity \|^masks \|^in-place\|^cuSPARSELt opaque\|^attention T=\|^model step' "$out/parity.log" \
                >"$out/parity-summary.txt"
            grep -v '^parity ' "$out/parity-summary.txt"
            ;;
        kernelparity)
            # The per-kernel parity tests alone (CudaParityTest, CompressedLayoutTest, GpuDecodingTest,
            # SparseDecodeParityTest: the few-rows 2:4 forward, the masks' NmMaskKernelTest and
            # SparseMaskRoundTripTest, ReusedKernelChoicesTest, GpuOutOfMemoryTest, RecordedStepTest and
            # RecordedDecodingTest: the recorded CUDA Graph passes against the eager ones; MetadataWriterTest: our
            # backward-operand metadata against cuSPARSELt's, byte for byte): the short form of parity. The attention
            # tests run last in a JVM of their own, so that a library dying there (cuDNN once did, taking the process
            # with it) leaves the other results.
            gpu_tests kernelparity "$out/junit" --select-class io.slope.cuda.CudaParityTest \
                --select-class io.slope.cuda.CompressedLayoutTest --select-class io.slope.cuda.GpuDecodingTest \
                --select-class io.slope.cuda.SparseDecodeParityTest \
                --select-class io.slope.cuda.ReusedKernelChoicesTest --select-class io.slope.cuda.GpuOutOfMemoryTest \
                --select-class io.slope.cuda.NmMaskKernelTest --select-class io.slope.cuda.SparseMaskRoundTripTest \
                --select-class io.slope.cuda.RecordedStepTest --select-class io.slope.cuda.RecordedDecodingTest \
                --select-class io.slope.cuda.MetadataWriterTest \
                --exclude-methodname '.*[aA]ttention.*' || status=1
            gpu_tests kernelparity-attention "$out/junit-attention" --select-class io.slope.cuda.CudaParityTest \
                --include-methodname '.*[aA]ttention.*' || status=1
            grep -h '^parity ' "$out/kernelparity.log" "$out/kernelparity-attention.log" >"$out/parity-summary.txt"
            ;;
        nccl)
            # NcclCollectiveTest (one rank on GPU 0; two ranks as threads on GPUs 0 and 1) and NcclDataParallelTest
            # (2 ranks vs 1, bf16, 20 steps). Two-GPU cases are skipped, and say so, on a one-GPU machine.
            gpu_tests nccl "$out/junit-nccl" --select-class io.slope.cuda.NcclCollectiveTest \
                --select-class io.slope.cuda.NcclDataParallelTest || status=1
            grep -h '^NCCL \|^rank 0' "$out/nccl.log"
            ;;
        ranks)
            # Issue 8: slope train --ranks 2 on two GPUs (NCCL) against --ranks 1 with the same global batch; rank 1
            # SIGKILLed after the step-100 checkpoint, the launcher stopping rank 0, the run resumed on one rank.
            # Then data-parallel weak scaling of GPT-2 medium and XL (slope bench scaling).
            runs="$work/ranks" && mkdir -p "$runs" && cp "$here/tinyshakespeare.txt" "$here/ranks.json" "$runs/"
            rjvm=(--enable-native-access=ALL-UNNAMED -Xmx32g)
            (cd "$runs" && timeout 300 "$java" "${rjvm[@]}" -cp "$cp" io.slope.cli.SlopeCli train --spec ranks.json \
                --out "$runs/one" --ranks 1 >"$out/ranks-one.log" 2>&1) &
            onePid=$!
            (cd "$runs" && timeout 300 "$java" "${rjvm[@]}" -cp "$cp" io.slope.cli.SlopeCli train --spec ranks.json \
                --out "$runs/two" --ranks 2 >"$out/ranks-two.log" 2>&1) &
            twoPid=$!
            for _ in $(seq 1 240); do
                [[ -f "$runs/two/metrics.jsonl" ]] && (($(wc -l <"$runs/two/metrics.jsonl") >= 150)) && break
                sleep 0.5
            done
            echo "ranks: killing rank 1 (pid $(cat "$runs/two/rank-1.pid")) after $(wc -l <"$runs/two/metrics.jsonl") steps"
            kill -9 "$(cat "$runs/two/rank-1.pid")"
            wait $twoPid
            echo "ranks: the 2-rank launcher exited $? (non-zero expected)"
            (cd "$runs" && timeout 300 "$java" "${rjvm[@]}" -cp "$cp" io.slope.cli.SlopeCli train \
                --resume "$runs/two" --ranks 1 >"$out/ranks-resume.log" 2>&1)
            echo "ranks: the resume on one rank exited $?"
            wait $onePid
            tail -n 2 "$out/ranks-one.log" "$out/ranks-two.log" "$out/ranks-resume.log"
            cp "$runs/two/rank-1.log" "$out/ranks-two-rank1.log" 2>/dev/null
            python3 "$here/compare_ranks.py" "$runs/one" "$out/ranks-one.log" "$runs/two" "$out/ranks-resume.log" \
                | tee "$work/ranks.json" || status=1
            {
                timeout 240 "$java" "${rjvm[@]}" -cp "$cp" io.slope.cli.SlopeCli bench scaling --preset gpt2-medium \
                    --mode slope --ranks 1,2 --steps 5 --out "$out"
                timeout 300 "$java" --enable-native-access=ALL-UNNAMED -Xmx100g -cp "$cp" io.slope.cli.SlopeCli bench \
                    scaling --preset gpt2-xl --mode slope --ranks 1,2 --steps 5 --out "$out"
            } >"$out/scaling.log" 2>&1 || status=1
            cat "$out/scaling.log"
            ;;
        train200 | train200dense)
            # The same 200-step char-level run on the CPU reference (14 threads) and on the GPU, side by side: SLoPe
            # (train200) or dense (train200dense: every linear layer through the dense GEMMs and their epilogues,
            # which the one-step ModelStepParityTest alone does not follow over many optimizer steps).
            mode=slope && [[ "$phase" == train200dense ]] && mode=dense
            runs="$work/runs-$phase" && mkdir -p "$runs" && cp "$here/tinyshakespeare.txt" "$runs/"
            sed "s/\"mode\": \"slope\"/\"mode\": \"$mode\"/" "$here/char200.json" >"$runs/char200.json"
            sed 's/"backend": "cpu"/"backend": "cuda"/' "$runs/char200.json" >"$runs/char200-cuda.json"
            (cd "$runs" && timeout 500 "$java" "${jvm[@]}" -cp "$cp" io.slope.cli.SlopeCli train --spec char200.json \
                --out "$runs/cpu" --log-every 1 --threads 14 >"$out/$phase-cpu.log" 2>&1) &
            cpuPid=$!
            (cd "$runs" && timeout 500 "$java" "${jvm[@]}" -cp "$cp" io.slope.cli.SlopeCli train \
                --spec char200-cuda.json --out "$runs/cuda" --log-every 1 >"$out/$phase-cuda.log" 2>&1)
            wait $cpuPid
            tail -n 3 "$out/$phase-cpu.log" "$out/$phase-cuda.log"
            python3 "$here/compare_runs.py" "$out/$phase-cpu.log" "$out/$phase-cuda.log" \
                | tee "$work/$phase.json" || status=1
            ;;
        gpurun)
            # Issue 14, a real run end to end on the GPU: gpurun.json (GPT-2 tokenizer on tinyshakespeare, 6 layers,
            # d 384, T 256, 400 slope steps, adapters for the last 1%) trained by `slope train --backend cuda` three
            # times at once: a and b uninterrupted, c SIGKILLed after step 150 (past the step-100 checkpoint) and
            # resumed. Then c's losses against a's, next to a vs b (the GPU's run-to-run difference), and transformers
            # recomputing a's val_loss_merged from its hf/ export (gpurun.sh, compare_resume.py, hf_check.py).
            runs="$work/gpurun" && mkdir -p "$runs" && cp "$here/tinyshakespeare.txt" "$here/gpurun.json" "$runs/"
            GPURUN_TIMEOUT=200 GPURUN_SAMPLE_BACKEND=cuda bash "$here/gpurun.sh" "$runs/gpurun.json" "$runs" "$out" 150 -- "$java" "${jvm[@]}" \
                -cp "$cp" io.slope.cli.SlopeCli >"$work/gpurun.txt" 2>&1 || status=1
            cat "$work/gpurun.txt"
            cp "$out/gpurun-compare.json" "$work/" 2>/dev/null
            cp "$out/gpurun-hf.json" "$work/" 2>/dev/null
            ;;
        bench)
            # Per-GEMM timings, a profiled GPT-2-small step, then whole steps: protocol (b) for small and medium, (a)
            # for small (64 micro-batches of 8×1024). One JVM per large model so each starts on an empty card.
            {
                "$java" "${jvm[@]}" -cp "$cp" io.slope.cuda.GemmBench 8192 2304x768 768x768 3072x768 768x3072 \
                    4096x1024 1024x4096 4800x1600 1600x1600 6400x1600 1600x6400 2560x2560 10240x2560 2560x10240
                SLOPE_CUDA_PROFILE=1 "${step[@]}" --results "$out/bench.jsonl" --steps 3 dense slope:1
                "${step[@]}" --results "$out/bench.jsonl" dense slope:1 slope:100
                "${step[@]}" --results "$out/bench.jsonl" --protocol a --steps 2 dense slope:1 slope:100
                for mode in dense slope:1 slope:100; do
                    "${step[@]}" --results "$out/bench.jsonl" --model gpt2-350M "$mode"
                done
            } >"$out/bench.log" 2>&1 || status=1
            timeout 240 python3 "$here/train_gpt2.py" --results "$out/bench.jsonl" >>"$out/bench.log" 2>&1
            cat "$out/bench.log"
            ;;
        benchsmall)
            # GPT-2 small whole steps only, protocols (b) and (a).
            {
                "${step[@]}" --results "$out/benchsmall.jsonl" dense slope:1 slope:100
                "${step[@]}" --results "$out/benchsmall.jsonl" --protocol a --steps 2 dense slope:1 slope:100
            } >"$out/benchsmall.log" 2>&1 || status=1
            cat "$out/benchsmall.log"
            ;;
        benchxl)
            # GPT-2 XL (1558M): ours in each mode, then PyTorch, protocol (b).
            {
                for mode in dense slope:1 slope:100; do
                    "${step_xl[@]}" --results "$out/benchxl.jsonl" --model gpt2-1558M --steps 4 "$mode"
                done
                timeout 300 python3 "$here/train_gpt2.py" --model gpt2-1558M --steps 8 --results "$out/benchxl.jsonl"
            } >"$out/benchxl.log" 2>&1 || status=1
            cat "$out/benchxl.log"
            ;;
        attention)
            # Issue 13: cuDNN's fused attention against the project's kernels, alone (GPT-2 small, XL and d = 2560 head
            # layouts) and inside whole GPT-2-small steps (protocol b), one profiled; PyTorch's step beside them.
            python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
            {
                "$java" "${jvm[@]}" -cp "$cp" io.slope.cuda.AttentionBench 790 8x1024x12x64 8x1024x25x64 8x1024x40x64
                SLOPE_CUDA_ATTENTION=own "${step[@]}" --results "$out/attention.jsonl" dense
                "${step[@]}" --results "$out/attention.jsonl" dense slope:100
                SLOPE_CUDA_PROFILE=1 "${step[@]}" --results "$out/attention.jsonl" --steps 3 dense
            } >"$out/attention.log" 2>&1 || status=1
            timeout 240 python3 "$here/train_gpt2.py" --results "$out/attention.jsonl" >>"$out/attention.log" 2>&1
            cat "$out/attention.log"
            ;;
        steps)
            # Issue 13: whole optimizer steps of the production Trainer (slope bench step) and of PyTorch for the same
            # sizes, all into one step-<UTC>.jsonl, then its table (steps.md): 124M in protocols (b) and (a), 350M and
            # 1558M in (b); ours in dense, slope:1 and slope:100, 1558M one JVM per mode so each starts on an empty
            # card. Timed steps: 30 in (b) at 124M and 350M (one slow step moved a median of 5 by 10% there), 10 at
            # 1558M, 2 in (a) (64 micro-batches each), so that all of it fits one device command (600 s).
            results="$out/step-$(date -u +%Y-%m-%d-%H%M%S).jsonl"
            {
                timeout 100 "${step[@]}" --results "$results" --steps 30 dense slope:1 slope:100 || status=1
                timeout 100 python3 "$here/train_gpt2.py" --protocol b --warmup 3 --steps 30 --results "$results" \
                    || status=1
                timeout 100 python3 "$here/train_gpt2.py" --protocol a --warmup 1 --steps 2 --results "$results" \
                    || status=1
                timeout 100 "${step[@]}" --results "$results" --protocol a --warmup 1 --steps 2 dense slope:1 \
                    slope:100 || status=1
                timeout 100 "${step[@]}" --results "$results" --model gpt2-350M --steps 30 dense slope:1 slope:100 \
                    || status=1
                timeout 120 python3 "$here/train_gpt2.py" --model gpt2-350M --steps 30 --results "$results" || status=1
                for mode in dense slope:1 slope:100; do
                    timeout 100 "${step_xl[@]}" --results "$results" --model gpt2-1558M --steps 10 "$mode" || status=1
                done
                timeout 200 python3 "$here/train_gpt2.py" --model gpt2-1558M --results "$results" || status=1
            } >"$out/steps.log" 2>&1
            grep -v '^{' "$out/steps.log" | tail -n 40
            python3 "$here/step_table.py" "$results" | tee "$out/steps.md" || status=1
            ;;
        steps1558)
            # The short form of steps at issue 13's main size, when little device time is left: GPT-2 1558M protocol
            # (b), ours dense and slope:100 (one JVM each, each on an empty card) and PyTorch, into one step-<UTC>.jsonl.
            results="$out/step-$(date -u +%Y-%m-%d-%H%M%S).jsonl"
            {
                for mode in dense slope:100; do
                    timeout 100 "${step_xl[@]}" --results "$results" --model gpt2-1558M --steps 10 "$mode" || status=1
                done
                timeout 200 python3 "$here/train_gpt2.py" --model gpt2-1558M --results "$results" || status=1
            } >"$out/steps1558.log" 2>&1
            grep -v '^{' "$out/steps1558.log" | tail -n 30
            python3 "$here/step_table.py" "$results" | tee "$out/steps.md" || status=1
            ;;
        steps124)
            # The short form of steps when little device time is left: GPT-2 124M protocol (b), ours dense and
            # slope:100 eager and with the micro-batch replayed as a CUDA Graph (ADR 044), and PyTorch, into one
            # step-<UTC>.jsonl.
            results="$out/step-$(date -u +%Y-%m-%d-%H%M%S).jsonl"
            {
                SLOPE_CUDA_GRAPHS=0 timeout 150 "${step[@]}" --results "$results" --steps 30 dense slope:100 \
                    || status=1
                SLOPE_CUDA_GRAPHS=1 timeout 150 "${step[@]}" --results "$results" --steps 30 dense slope:100 \
                    || status=1
                timeout 200 python3 "$here/train_gpt2.py" --protocol b --warmup 3 --steps 30 --results "$results" \
                    || status=1
            } >"$out/steps124.log" 2>&1
            grep -v '^{' "$out/steps124.log" | tail -n 30
            python3 "$here/step_table.py" "$results" | tee "$out/steps.md" || status=1
            ;;
        steps2560)
            # Issue 13's d = 2560 target (GPT-3 2.7B's width, 32 layers): ours dense and slope:100, one JVM each so
            # each starts on an empty card, then PyTorch, protocol (b), into one step-<UTC>.jsonl and its table.
            results="$out/step-$(date -u +%Y-%m-%d-%H%M%S).jsonl"
            {
                for mode in dense slope:100; do
                    timeout 150 "${step_xl[@]}" --results "$results" --model d2560 --steps 8 "$mode" || status=1
                done
                timeout 240 python3 "$here/train_gpt2.py" --model d2560 --steps 8 --results "$results" || status=1
            } >"$out/steps2560.log" 2>&1
            grep -v '^{' "$out/steps2560.log" | tail -n 30
            python3 "$here/step_table.py" "$results" | tee "$out/steps2560.md" || status=1
            ;;
        infer)
            # Issue 14: inference through the production model, dense vs SLoPe's inference form (2:4 + adapters):
            # prefill of 8 × 1024 and KV-cache decoding at batch 1, 8, 16; one JVM per model and mode (the lines of
            # a JVM that stops early are kept).
            results="$out/infer-$(date -u +%Y-%m-%d-%H%M%S).jsonl"
            for model in gpt2-774M gpt2-1558M d2560; do
                for mode in dense slope; do
                    timeout 150 "${infer_xl[@]}" --results "$results" --model "$model" "$mode" >>"$out/infer.log" 2>&1 \
                        || status=1
                done
            done
            grep -v '^{' "$out/infer.log" | tail -n 20
            python3 "$here/infer_table.py" "$results" | tee "$out/infer.md" || status=1
            # Where a prefill and a decoding step spend their time, dense and SLoPe at 774M (every operation timed).
            for mode in dense slope; do
                SLOPE_CUDA_PROFILE=1 timeout 120 "${infer_xl[@]}" --results "$work/infer-profiled.jsonl" \
                    --model gpt2-774M --repeats 2 --tokens 8 --decode-batch 1 "$mode" 2>&1 | grep -v '^{' \
                    >>"$out/infer-profile.log" || status=1
            done
            ;;
        quality)
            # Issue 18: bench/quality gutenberg on the GPU, one model per call (QUALITY_MODEL small or 124M, modes,
            # seeds, tokens, runs at a time and the deadline after which no run starts from QUALITY_*): every run's
            # metrics in quality-<model>.jsonl, the table in quality-<model>-table.json. QUALITY_LRS (peak learning
            # rates, space-separated) runs the whole grid once per rate side by side, into quality-<model>-lr<rate>.*.
            q="$work/quality" && mkdir -p "$q" && tar -C "$q" -xJf "$here/gutenberg.tar.xz"
            model="${QUALITY_MODEL:-small}"
            quality_run() {  # $1: the peak learning rate, or empty for the model's own
                local tag="quality-$model${1:+-lr$1}"
                PYTHONUNBUFFERED=1 timeout 540 python3 "$here/quality" gutenberg --corpus "$q/gutenberg" \
                    --slope "$java ${jvm[*]} -cp $cp io.slope.cli.SlopeCli" --backend cuda --model "$model" \
                    ${QUALITY_MODES:+--modes "$QUALITY_MODES"} --seeds "${QUALITY_SEEDS:-1,2,3}" \
                    --tokens "${QUALITY_TOKENS:-4194304}" --batch-size 16 ${1:+--lr "$1"} \
                    --parallel "${QUALITY_PARALLEL:-3}" --deadline "${QUALITY_DEADLINE:-360}" --work "$q/work-$tag" \
                    --out "$out/$tag" >"$out/$tag.log" 2>&1
            }
            pids=()
            read -r -a lrs <<<"${QUALITY_LRS:-}"
            [[ ${#lrs[@]} -gt 0 ]] || lrs=("")
            for lr in "${lrs[@]}"; do
                quality_run "$lr" &
                pids+=($!)
            done
            for pid in "${pids[@]}"; do
                wait "$pid" || status=1
            done
            tail -n 12 "$out"/quality-*.log
            ;;
        qualityref)
            # Issue 18: is our dense quality run right? The same small model, data, schedule and optimizer in stock
            # PyTorch (bench/pytorch/gutenberg_reference.py), dense and static 2:4, at each peak LR of QUALITY_LRS
            # (default 3e-4, the quality grid's), all side by side; the tokens are our own prepared shards, made by
            # a one-step `slope train` of the grid's first spec. Lines in quality-reference.jsonl.
            q="$work/qualityref" && mkdir -p "$q" && tar -C "$q" -xJf "$here/gutenberg.tar.xz"
            PYTHONUNBUFFERED=1 timeout 200 python3 "$here/quality" gutenberg --corpus "$q/gutenberg" \
                --slope "$java ${jvm[*]} -cp $cp io.slope.cli.SlopeCli" --backend cuda --model small --modes dense \
                --seeds 1 --steps 1 --eval-windows 1 --keep-runs --work "$q/work" --out "$work/qualityref-prepare" \
                >"$out/qualityref-prepare.log" 2>&1 || status=1
            tokens="${QUALITY_TOKENS:-16777216}"
            pids=()
            for lr in ${QUALITY_LRS:-3e-4}; do
                for mode in dense static-2:4; do
                    timeout 420 python3 "$here/gutenberg_reference.py" --data "$q/work/runs/small-dense-s1/dataset" \
                        --mode "$mode" --lr "$lr" --steps $((tokens / 16384)) --out "$out/quality-reference.jsonl" \
                        >"$out/qualityref-$mode-$lr.log" 2>&1 &
                    pids+=($!)
                done
            done
            for pid in "${pids[@]}"; do
                wait "$pid" || status=1
            done
            grep -h '"kind": "summary"' "$out/quality-reference.jsonl" | cut -c1-240
            ;;
        profile124)
            # Where a 124M step (b) spends its time, dense and SLoPe r=100: every operation's GPU time by CUDA events,
            # nothing synchronised (SLOPE_CUDA_PROFILE=events), and the GPU's idle time between operations: the host's
            # share of the step.
            for mode in dense slope:100; do
                SLOPE_CUDA_PROFILE=events timeout 90 "${step[@]}" --results "$work/profile124.jsonl" --steps 3 "$mode" \
                    2>&1 | grep -v '^{' >>"$out/profile124.log" || status=1
            done
            # The same with the micro-batch replayed as users run it, each replay one entry: the idle entry is then
            # the host's share of a production step.
            for mode in dense slope:100; do
                SLOPE_CUDA_PROFILE=replays timeout 90 "${step[@]}" --results "$work/profile124.jsonl" --steps 5 \
                    "$mode" 2>&1 | grep -v '^{' >>"$out/profile124.log" || status=1
            done
            cat "$out/profile124.log"
            ;;
        profile1558)
            # Where SLoPe's 1558M step loses to dense (issue 13's target is SLoPe ≥ 1.10× dense there): as profile124,
            # by CUDA events, one JVM per mode; slope:1 last, for where a column-mask refresh every step spends its time.
            for mode in dense slope:100 slope:1; do
                SLOPE_CUDA_PROFILE=events timeout 150 "${step_xl[@]}" --results "$work/profile1558.jsonl" \
                    --model gpt2-1558M --steps 2 "$mode" 2>&1 | grep -v '^{' >>"$out/profile1558.log" || status=1
            done
            cat "$out/profile1558.log"
            ;;
        kernels)
            # Issue 13: every kernel of one step timed by Nsight Compute (kernels serialised, caches and clocks left
            # alone), grouped by name; the summed GPU time against the step's wall time shows what the host costs.
            ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
            i=0
            for cfg in "gpt2-124M dense" "gpt2-124M slope:100" "gpt2-1558M dense"; do
                i=$((i + 1))
                read -r model mode <<<"$cfg"
                echo "== ncu: $cfg" | tee -a "$out/kernels.txt"
                SLOPE_CUDA_NCU_STEP=1 timeout 240 "$ncu" --profile-from-start off --clock-control none \
                    --cache-control none --metrics gpu__time_duration.sum --csv --log-file "$work/ncu-$i.csv" \
                    "${step_xl[@]}" --results "$work/kernels.jsonl" --model "$model" --steps 1 "$mode" \
                    >>"$out/kernels.txt" 2>&1 || status=1
                python3 "$here/kernel_table.py" "$work/ncu-$i.csv" 30 >>"$out/kernels.txt" 2>&1 || status=1
            done
            cat "$out/kernels.txt"
            ;;
        sparsegemm)
            # The go/no-go for a 2:4 GEMM of our own (bench/NOTES.md, "What limits the rest"; bench/sparse-gemm):
            # CUTLASS's sm90 2:4 GEMM, with a bias epilogue and with GELU plus the pre-activation (aux) written beside
            # it, checked against an fp32 reference and timed (bin/sparse_gemm_bench: sparsegemm-cutlass.txt); then
            # cuSPARSELt's 2:4 and cuBLASLt's dense GEMMs on the same weights, forward and dX (slope bench gemm:
            # sparsegemm-cusparselt.jsonl); then both side by side (sparsegemm.md). GPT-2 1558M's and d = 2560's
            # qkv, proj, fc and fc2 weights, DOUTxDIN, 8192 rows.
            shapes=(4800x1600 1600x1600 6400x1600 1600x6400 7680x2560 2560x2560 10240x2560 2560x10240)
            if [[ -x "$root/bin/sparse_gemm_bench" ]]; then
                # Its static CUDA runtime opens libcuda.so.1 by name: the driver's folder last, should the loader
                # not know it.
                LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/usr/local/nvidia/lib64" timeout 300 "$root/bin/sparse_gemm_bench" \
                    --rows 8192 "${shapes[@]}" >"$out/sparsegemm-cutlass.txt" 2>&1 || status=1
                cat "$out/sparsegemm-cutlass.txt"
            else
                echo "sparsegemm: this bundle has no bin/sparse_gemm_bench (built without nvcc or CUTLASS's headers;" \
                    "./slope tools installs them, then rebuild the bundle): cuSPARSELt alone" \
                    | tee "$out/sparsegemm-cutlass.txt"
                status=1
            fi
            timeout 240 "$java" "${jvm[@]}" -cp "$cp" io.slope.cli.SlopeCli bench gemm --tokens 8192 \
                --results "$out/sparsegemm-cusparselt.jsonl" "${shapes[@]}" >"$out/sparsegemm-cusparselt.log" 2>&1 \
                || status=1
            cat "$out/sparsegemm-cusparselt.log"
            python3 "$here/sparse_gemm_table.py" "$out/sparsegemm-cutlass.txt" "$out/sparsegemm-cusparselt.jsonl" \
                | tee "$out/sparsegemm.md" || status=1
            ;;
        service)
            # Issue 14: the whole service on this machine (service.sh, the header above): OUT/service.json and
            # OUT/service-logs.tar.gz.
            bash "$here/service.sh" "$root" "$work/service" "$out" || status=1
            cp "$out/service.json" "$work/" 2>/dev/null
            ;;
        *)
            echo "unknown phase $phase (parity, nccl, ranks, train200, train200dense, qualityref, bench, benchsmall, benchxl, attention," \
                "steps, steps124, steps1558, steps2560, profile124, profile1558, kernels, sparsegemm, infer, gpurun, quality," \
                "kernelparity, service)" >&2
            status=2
            ;;
    esac
    # Phase lengths, so the next lease can plan its calls (each at most 600 s).
    echo "== phase $phase took $((SECONDS - phase_start)) s (status so far $status)"
done
cp -r "$out/junit" "$work/" 2>/dev/null
python3 "$here/summarize.py" "$work" | tee "$out/summary.json"
exit $status
