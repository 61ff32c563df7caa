"""The REST side of device.sh's service phase (service.sh), against the API at $SLOPE_API with $SLOPE_TOKEN:
  spec SPEC BACKEND                 prints SPEC with its backend set and its local corpus paths made absolute
  kill-mid-chunk ID STEP PID LOG KILL   waits until run ID has trained STEP steps and more than its last
                                    committed checkpoint (the GPU worker is in the middle of a chunk), SIGKILLs PID,
                                    writes what it saw then to KILL (JSON)
  wait-done ID LOG                  waits until run ID has finished; exits 0 when it succeeded
  summary ID LOG KILL DOWNLOAD LOGS...   the phase's summary JSON: status transitions, the kill, the final validation
                                    losses, the exports (and what `slope download` verified), the events, log tails
While waiting, each change of the run's status or stage is appended to LOG (JSON lines); a wait ends at
SERVICE_DEADLINE (seconds since the epoch; default 480 s from its start)."""
import json
import os
import signal
import sys
import time
import urllib.request
from datetime import datetime, timezone


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def get(path):
    request = urllib.request.Request(os.environ["SLOPE_API"] + path,
                                     headers={"Authorization": "Bearer " + os.environ["SLOPE_TOKEN"]})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def watch(run_id, log, done):
    """Polls the run, logging each new (status, stage), until done(run) holds; returns that run, or exits 1."""
    deadline = float(os.environ.get("SERVICE_DEADLINE", time.time() + 480))
    seen = None
    while time.time() < deadline:
        run = get("/api/v1/runs/" + run_id)
        state = (run["status"], run.get("stage"))
        if state != seen:
            seen = state
            with open(log, "a") as f:
                f.write(json.dumps({"at": now(), "status": state[0], "stage": state[1],
                                    "steps_done": run["stepsDone"]}) + "\n")
        if done(run):
            return run
        if run["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            sys.exit(f"servicerun: run {run_id} ended {run['status']} before the awaited point: {run.get('error')}")
        time.sleep(0.25)
    sys.exit(f"servicerun: run {run_id} did not get there in time (now {seen})")


def last_checkpoint(run):
    return (run.get("lastCheckpoint") or {}).get("step", 0)


def kill_mid_chunk(run_id, step, pid, log, kill):
    run = watch(run_id, log, lambda r: r["status"] == "RUNNING" and r["stepsDone"] >= int(step)
                and r["stepsDone"] > last_checkpoint(r))
    os.kill(int(pid), signal.SIGKILL)
    with open(kill, "w") as f:
        json.dump({"at": now(), "pid": int(pid), "steps_done": run["stepsDone"],
                   "last_checkpoint": last_checkpoint(run), "stage": run.get("stage")}, f)


def wait_done(run_id, log):
    run = watch(run_id, log, lambda r: r["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    print(f"servicerun: run {run_id} {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    sys.exit(0 if run["status"] == "SUCCEEDED" else 1)


def tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-lines:]
    except OSError as e:
        return [str(e)]


def summary(run_id, log, kill, download, *logs):
    run = get("/api/v1/runs/" + run_id)
    downloaded = [os.path.relpath(os.path.join(d, f), download) for d, _, files in os.walk(download) for f in files]
    print(json.dumps({
        "run_id": run_id,
        "status": run["status"],
        "error": run.get("error"),
        "backend": run["spec"].get("backend"),
        "steps": run["totalSteps"],
        "chunk_steps": run["options"]["chunkSteps"],
        "transitions": [json.loads(line) for line in open(log)] if os.path.exists(log) else [],
        "kill": json.load(open(kill)) if os.path.exists(kill) else None,
        "final_val_loss": {e["name"]: e["value"] for e in sorted(run["evals"], key=lambda e: e["step"])},
        "tokens_per_second": run.get("tokensPerSecond"),
        "checkpoints": [c["step"] for c in run["checkpoints"]],
        "exports": [{"path": a["path"], "bytes": a["bytes"]} for a in get(f"/api/v1/runs/{run_id}/artifacts")["items"]],
        "downloaded_and_verified": sorted(downloaded),
        "events": [f"{e['at']} {e['level']} {e.get('stage') or '-'} {e['message']}" for e in run["events"]],
        "log_tails": {os.path.basename(path): tail(path) for path in logs},
    }, indent=2))


def spec(path, backend):
    with open(path) as f:
        s = json.load(f)
    s["backend"] = backend
    folder = os.path.dirname(os.path.abspath(path))
    data = s.get("data", {})
    for field in ("corpus", "validation"):
        if field in data:
            data[field] = [e if e.startswith("s3://") else os.path.join(folder, e) for e in data[field]]
    print(json.dumps(s, indent=2))


if __name__ == "__main__":
    commands = {"spec": spec, "kill-mid-chunk": kill_mid_chunk, "wait-done": wait_done, "summary": summary}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
