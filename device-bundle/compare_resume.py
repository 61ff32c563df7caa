"""Issue 14 on the device: a run SIGKILLed mid-training and continued with --resume (c) against the same spec run
uninterrupted (a), measured against a second uninterrupted run (b), the backend's own run-to-run difference. Per-step
training losses come from each run's metrics.jsonl (a resumed run appends: a step's last line counts), the final
validation losses from each log's last JSON line (the summary). Pass: c finished with its exports, all three runs
logged every step, and either a and b agree bit for bit (a deterministic step) and so does c, or the largest
|loss_c - loss_a| over the steps is at most twice the largest |loss_b - loss_a| (the spread of a maximum of noise);
and c was killed (KILLED_LINES: how many steps its metrics.jsonl held then) and its resume trained steps after it.
Usage: compare_resume.py A_DIR A_LOG B_DIR B_LOG C_DIR C_LOG KILLED_LINES. Prints one JSON object."""
import json
import os
import sys

FINAL = ("val_loss_sparse", "val_loss_adapters", "val_loss_merged", "val_loss_inference_form")


def metrics(run, killed_lines=None):
    """{step: loss} with a step's last line counting; with killed_lines (the lines logged when the run was killed),
    also the last step trained before the kill and the first step the resume trained (None when it trained none)."""
    by_step, lines = {}, []
    if os.path.exists(f"{run}/metrics.jsonl"):
        with open(f"{run}/metrics.jsonl") as f:
            lines = [json.loads(line) for line in f]
    for m in lines:
        by_step[m["step"]] = m["loss"]
    if killed_lines is None:
        return by_step, None, None
    killed_at = lines[killed_lines - 1]["step"] if 0 < killed_lines <= len(lines) else None
    resumed_from = lines[killed_lines]["step"] if killed_lines < len(lines) else None
    return by_step, killed_at, resumed_from


def summary(log):
    if not os.path.exists(log):
        return {}
    with open(log) as f:
        lines = [line for line in f if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def max_diff(x, y, steps):
    return max((abs(x[s] - y[s]) for s in steps), default=None)


killed_lines = int(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[7] else None
(a, _, _), (b, _, _) = metrics(sys.argv[1]), metrics(sys.argv[3])
c, killed_after, resumed_from = metrics(sys.argv[5], killed_lines)
sa, sb, sc = (summary(sys.argv[i]) for i in (2, 4, 6))
steps = sorted(set(a) & set(b) & set(c))
complete = len(steps) == len(a) == len(b) == len(c) and len(steps) == sa.get("steps")
deterministic = complete and all(a[s] == b[s] for s in steps) and all(sa.get(k) == sb.get(k) for k in FINAL)
ab, ac = max_diff(a, b, steps), max_diff(a, c, steps)
bit_for_bit = complete and all(a[s] == c[s] for s in steps) and all(sa.get(k) == sc.get(k) for k in FINAL)
finished = sc.get("hf_export") is not None and sa.get("hf_export") is not None
if deterministic:
    ok, rule = bit_for_bit, "a and b agree bit for bit, so c must too"
else:
    ok, rule = ac is not None and ab is not None and ac <= 2 * ab, "max |c - a| <= 2 * max |b - a| over the steps"
ok = ok and complete and finished and killed_after is not None and resumed_from is not None
print(json.dumps({
    "steps": len(steps), "c_killed_after_step": killed_after, "c_resumed_from_step": resumed_from,
    "c_finished": finished,
    "deterministic_a_vs_b": deterministic, "c_bit_for_bit_with_a": bit_for_bit,
    "max_abs_loss_diff_b_vs_a": ab, "max_abs_loss_diff_c_vs_a": ac,
    "final": {k: {"a": sa.get(k), "b": sb.get(k), "c": sc.get(k)} for k in FINAL},
    "backend": sa.get("backend"), "rule": rule, "pass": ok}, indent=1))
sys.exit(0 if ok else 1)
