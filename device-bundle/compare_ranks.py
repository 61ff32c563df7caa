"""Issue 8 on the device: compares the per-step losses (metrics.jsonl) of a `slope train --ranks 2` run (killed
mid-way and resumed on one rank) with an uninterrupted `--ranks 1` run of the same spec and global batch. Pass: the
loss curves agree within 2e-2 normwise (||a - b|| / ||b|| over every step; bf16 activations, different reduction
orders and cuSPARSELt algorithm choices move single steps by ~1e-3 relative) and the final validation losses within
2%. Usage: compare_ranks.py ONE_RANK_DIR ONE_RANK_LOG TWO_RANK_DIR RESUME_LOG (a log's last JSON line is the run's
summary). Prints one JSON object."""
import json
import math
import sys


def losses(run):
    by_step = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            by_step[m["step"]] = m["loss"]  # a resumed run appends: the last line of a step counts
    return by_step


def summary(log):
    with open(log) as f:
        return json.loads([line for line in f if line.startswith("{")][-1])


one, two = losses(sys.argv[1]), losses(sys.argv[3])
steps = sorted(set(one) & set(two))
diff = math.sqrt(sum((two[s] - one[s]) ** 2 for s in steps))
norm = math.sqrt(sum(one[s] ** 2 for s in steps))
rel = diff / norm if norm else None
val_one, val_two = summary(sys.argv[2])["val_loss_adapters"], summary(sys.argv[4])["val_loss_adapters"]
val_rel = abs(val_two - val_one) / val_one
ok = len(steps) == len(one) == len(two) and rel is not None and rel <= 2e-2 and val_rel <= 0.02
print(json.dumps({"steps_compared": len(steps), "loss_curve_rel_diff": rel, "val_loss_adapters_one_rank": val_one,
                  "val_loss_adapters_two_ranks_resumed_on_one": val_two, "val_loss_rel_diff": val_rel, "pass": ok}))
sys.exit(0 if ok else 1)
