#!/usr/bin/env bash
# device.sh's service phase (issue 14): the whole service on one machine, run by the bundle's Java from the pieces
# stage-service.sh carried in earlier calls (.device-service, .device-temporal beside .device): `slope up --no-gpu-worker`
# (Postgres, as nobody under root; the Temporal dev server; S3Proxy; the pipeline worker; the REST API) and a GPU worker
# as a process of its own. Submits SERVICE_SPEC (default servicerun.json: GPT-2 tokens of tinyshakespeare, 1,200 steps)
# with its backend set to SERVICE_BACKEND (default cuda) through `slope submit --chunk-steps SERVICE_CHUNK_STEPS`,
# SIGKILLs the GPU worker once the run has trained SERVICE_KILL_STEP steps in the middle of a chunk, starts another,
# follows the run to its end and downloads its exports (`slope download` checks their sha256). Writes OUT/service.json
# (servicerun.py summary) and OUT/service-logs.tar.gz; exits non-zero, saying why, when a piece is missing or the run
# does not succeed. The run has SERVICE_TIMEOUT seconds (default 420) from the start of the phase, so that its logs
# come back within a device command's 600 s. SERVICE_BACKEND=cpu rehearses it without a GPU (check-service.sh).
# Usage: service.sh BUNDLE_ROOT WORK OUT   (the unpacked bundle, a scratch folder, where results go)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$1" work="$2" out="$3"
backend="${SERVICE_BACKEND:-cuda}"
spec="${SERVICE_SPEC:-$here/servicerun.json}"
chunk="${SERVICE_CHUNK_STEPS:-300}"
kill_step="${SERVICE_KILL_STEP:-750}"
export SERVICE_DEADLINE=$(($(date +%s) + ${SERVICE_TIMEOUT:-420})) # servicerun.py's waits end there
java="$root/runtime/bin/java"
jvm=(--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow)
svc="$work/slope-service"
logs="$work/logs"
home="$work/home"
fail() {
    echo "service: $*" >&2
    exit 1
}

# The pieces: the service's archive and the Temporal CLI, from the same commit as the bundle.
service_tar="$here/../.device-service/slope-service.tar.xz"
temporal_xz="$here/../.device-temporal/temporal.xz"
for piece in "$service_tar" "$temporal_xz"; do
    [[ -f "$piece" ]] || fail "$piece is missing: stage it with device-bundle/stage-service.sh and carry it in a" \
        "call before this one (device.sh's header)"
done
umask 022 # Postgres runs as nobody under root and must reach its folder under $home
mkdir -p "$work" "$logs" "$home" "$out"
tar -C "$work" -xJf "$service_tar" || fail "cannot unpack $service_tar"
xz -dc "$temporal_xz" >"$svc/temporal" && chmod +x "$svc/temporal" || fail "cannot unpack $temporal_xz"
[[ "$(cat "$svc/COMMIT")" == "$(cat "$here/COMMIT")" ]] \
    || fail "the service pieces are of commit $(cat "$svc/COMMIT"), the bundle of $(cat "$here/COMMIT"): stage both anew"
# Each JVM's jars by name in one folder: the service's, and the bundle's linked in beside them.
for jar in "$root"/lib/*.jar; do
    [[ -e "$svc/jars/$(basename "$jar")" ]] || ln -s "$jar" "$svc/jars/"
done
missing="$(cat "$svc"/{cli,api,s3proxy}.classpath | sort -u | while read -r name; do
    [[ -e "$svc/jars/$name" ]] || echo "$name"
done)"
[[ -z "$missing" ]] || fail "jars in neither the bundle nor .device-service: $missing"
classpath() { sed "s|^|$svc/jars/|" "$svc/$1" | paste -sd:; }
cli_cp="$(classpath cli.classpath)"
# The API as slope up expects its build: the slope-api jar (the list's first) and lib/.
mkdir -p "$svc/api/lib"
ln -s "$svc/jars/$(head -n 1 "$svc/api.classpath")" "$svc/api/"
tail -n +2 "$svc/api.classpath" | while read -r name; do ln -s "$svc/jars/$name" "$svc/api/lib/"; done
pgbin="$(ls -d "$svc"/pg/usr/lib/postgresql/*/bin)"
unresolved="$(LD_LIBRARY_PATH="$svc/pg/lib" ldd "$pgbin"/* | grep 'not found' | sort -u)"
[[ -z "$unresolved" ]] || fail "PostgreSQL's binaries lack libraries here: $unresolved"
"$svc/temporal" --version || fail "the temporal CLI does not run here"

# Debian's Postgres reads time zones from /usr/share/zoneinfo, which minimal images lack, and knows only GMT without
# it; the JDBC driver sets each session's zone to Java's default, which Java takes from TZ.
export TZ=GMT
read -r -a ports < <(python3 -c 'import socket
sockets = [socket.socket() for _ in range(5)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))')
echo "service: ports temporal ${ports[0]}, ui ${ports[1]}, postgres ${ports[2]}, s3 ${ports[3]}, api ${ports[4]}"

# slope up finds the carried servers through the variables it reads (PostgresServer, TemporalDevServer, S3Server);
# the carried libraries are for Postgres, which it starts.
(cd "$work" && LD_LIBRARY_PATH="$svc/pg/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" SLOPE_PG_BIN="$pgbin" \
    SLOPE_TEMPORAL_CLI="$svc/temporal" SLOPE_S3PROXY_CLASSPATH="$(classpath s3proxy.classpath)" \
    exec "$java" "${jvm[@]}" -Xmx4g -cp "$cli_cp" io.slope.cli.SlopeCli up --home "$home" --api-build "$svc/api" \
    --no-gpu-worker --temporal-port "${ports[0]}" --ui-port "${ports[1]}" --postgres-port "${ports[2]}" \
    --s3-port "${ports[3]}" --api-port "${ports[4]}") >"$logs/slope-up.log" 2>&1 &
up_pid=$!
gpu_pid=""

# Stops what this phase started (SIGTERM: slope up stops the API, the worker and the servers it started), then packs
# the logs: its own, the servers' and the API's.
finish() {
    [[ -n "$gpu_pid" ]] && kill "$gpu_pid" 2>/dev/null
    kill "$up_pid" 2>/dev/null
    for _ in $(seq 1 120); do
        local alive=0 pid
        for pid in $up_pid $gpu_pid; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.5
    done
    kill -9 $up_pid $gpu_pid 2>/dev/null
    (cd "$work" && find logs home -name '*.log' -print0 | tar -czf "$out/service-logs.tar.gz" --null -T -)
}
trap finish EXIT

# Waits until LOG has a line matching PATTERN, failing with its end when PID exits or SECONDS pass.
await_line() { # LOG PATTERN PID SECONDS WHAT
    for _ in $(seq 1 $(($4 * 2))); do
        grep -q "$2" "$1" && return 0
        kill -0 "$3" 2>/dev/null || { tail -n 40 "$1" >&2; fail "$5 exited"; }
        sleep 0.5
    done
    tail -n 40 "$1" >&2
    fail "$5: not ready after $4 s"
}
await_line "$logs/slope-up.log" '^slope up: ready' "$up_pid" 300 "slope up"
cat "$logs/slope-up.log"

# A GPU worker of its own (the N-th), with the environment slope up wrote for it; its JVM is $gpu_pid.
start_gpu_worker() { # N
    (while IFS= read -r line; do export "$line"; done <"$home/worker.env"
        SLOPE_WORKER_ID="device-gpu-$1" exec "$java" "${jvm[@]}" -Xmx16g -cp "$cli_cp" io.slope.gpuworker.GpuWorker) \
        >"$logs/gpu-worker-$1.log" 2>&1 &
    gpu_pid=$!
    await_line "$logs/gpu-worker-$1.log" 'polling' "$gpu_pid" 120 "GPU worker $1"
    grep 'slope gpu worker' "$logs/gpu-worker-$1.log"
}
start_gpu_worker 1

export SLOPE_API="http://127.0.0.1:${ports[4]}"
SLOPE_TOKEN="$(sed -n 's/^token=//p' "$home/config")"
export SLOPE_TOKEN
slope() { "$java" "${jvm[@]}" -Xmx1g -cp "$cli_cp" io.slope.cli.SlopeCli "$@"; }
watch=(python3 "$here/servicerun.py")
"${watch[@]}" spec "$spec" "$backend" >"$work/spec.json" || fail "cannot read $spec"
run_id="$(slope submit "$work/spec.json" --chunk-steps "$chunk" 2>"$logs/submit.log")" \
    || fail "slope submit failed: $(cat "$logs/submit.log")"
echo "service: submitted run $run_id ($backend)"
cat "$logs/submit.log"

status=0
if "${watch[@]}" kill-mid-chunk "$run_id" "$kill_step" "$gpu_pid" "$work/transitions.jsonl" "$work/kill.json"; then
    wait "$gpu_pid" 2>/dev/null
    echo "service: SIGKILLed GPU worker 1: $(cat "$work/kill.json")"
    start_gpu_worker 2
    "${watch[@]}" wait-done "$run_id" "$work/transitions.jsonl" || status=1
    slope download "$run_id" --out "$work/download" >"$logs/download.log" 2>&1 || status=1
else
    status=1
fi
"${watch[@]}" summary "$run_id" "$work/transitions.jsonl" "$work/kill.json" "$work/download" "$logs"/*.log \
    | tee "$out/service.json" || status=1
exit $status
