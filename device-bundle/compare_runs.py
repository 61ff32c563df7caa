"""Compares the per-step training losses and final validation loss of a CPU and a CUDA `slope train` log (issue 5:
mean |loss_gpu - loss_cpu| over steps 100-200 <= 0.03 nats; final val loss within 2%). Prints one JSON object."""
import json
import re
import sys


def read(path):
    steps, val = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"step (\d+)/\d+\s+loss ([0-9.]+)", line)
            if m:
                steps[int(m.group(1))] = float(m.group(2))
            if line.startswith("{"):
                try:
                    val = json.loads(line).get("val_loss_sparse")
                except ValueError:
                    pass
    return steps, val


cpu_steps, cpu_val = read(sys.argv[1])
gpu_steps, gpu_val = read(sys.argv[2])
window = [s for s in range(100, 201) if s in cpu_steps and s in gpu_steps]
mean_abs = sum(abs(gpu_steps[s] - cpu_steps[s]) for s in window) / max(1, len(window))
val_rel = abs(gpu_val - cpu_val) / cpu_val if cpu_val and gpu_val else None
ok = len(window) == 101 and mean_abs <= 0.03 and val_rel is not None and val_rel <= 0.02
print(json.dumps({"steps_compared": len(window), "mean_abs_loss_diff_100_200": mean_abs,
                  "val_loss_cpu": cpu_val, "val_loss_gpu": gpu_val, "val_loss_rel_diff": val_rel,
                  "loss_cpu_200": cpu_steps.get(200), "loss_gpu_200": gpu_steps.get(200), "pass": ok}))
sys.exit(0 if ok else 1)
