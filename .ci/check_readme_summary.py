#!/usr/bin/env python3
"""Checks the JSON summary of the README's first command (the last line of its output, on stdin) against
examples/readme.json and the README's promises: every documented key, the steps and tokens the spec asks for, a model
that learned, the merged export equal to the adapters' model within 1e-4, and both exports on disk."""
import json
import math
import pathlib
import sys

KEYS = ["name", "mode", "steps", "train_tokens", "train_loss", "tokens_per_second", "seconds", "backend", "ranks",
        "run_dir", "val_loss_sparse", "val_loss_adapters", "val_loss_merged", "val_loss_inference_form",
        "hf_export", "slope_export"]


def check(summary, spec, first_step_loss):
    errors = [f"missing key {k}" for k in KEYS if k not in summary]
    if errors:
        return errors
    training = spec["training"]
    if summary["name"] != spec["name"] or summary["mode"] != spec["sparsity"]["mode"]:
        errors.append(f"name/mode {summary['name']}/{summary['mode']} are not the spec's")
    if summary["steps"] != training["steps"] or summary["ranks"] != 1:
        errors.append(f"steps {summary['steps']}, ranks {summary['ranks']}: expected {training['steps']}, 1")
    if not summary["backend"].startswith(spec["backend"]):
        errors.append(f"backend {summary['backend']} is not {spec['backend']}")
    if not (summary["train_tokens"] > 0 and summary["train_tokens"] % (training["steps"] * training["batchSize"]) == 0):
        errors.append(f"train_tokens {summary['train_tokens']} is not steps x batch x sequence length")
    if not (summary["tokens_per_second"] > 0 and summary["seconds"] > 0):
        errors.append("tokens_per_second and seconds must be positive")
    losses = {k: summary[k] for k in KEYS if k.startswith("val_loss") or k == "train_loss"}
    if not all(isinstance(v, float) and math.isfinite(v) for v in losses.values()):
        errors.append(f"losses not finite: {losses}")
        return errors
    # Learned: every validation loss well below the first step's loss (about ln of the vocabulary).
    if not all(losses[k] < 0.8 * first_step_loss for k in losses if k.startswith("val_loss")):
        errors.append(f"validation losses {losses} are not below 0.8 x the first step's {first_step_loss}")
    if abs(summary["val_loss_merged"] - summary["val_loss_adapters"]) > 1e-4:
        errors.append("val_loss_merged differs from val_loss_adapters by more than 1e-4")
    for key, files in (("hf_export", ["config.json", "model.safetensors"]), ("slope_export", ["manifest.json"])):
        missing = [f for f in files if not (pathlib.Path(summary[key]) / f).is_file()]
        if missing:
            errors.append(f"{key} {summary[key]} lacks {missing}")
    return errors


def main():
    summary = json.loads(sys.stdin.read().strip().splitlines()[-1])
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    first = json.loads(pathlib.Path(summary["run_dir"], "metrics.jsonl").read_text().splitlines()[0])
    errors = check(summary, spec, first["loss"])
    for e in errors:
        print(f"README summary: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"README summary: ok ({summary['steps']} steps, val_loss_merged {summary['val_loss_merged']:.4f}, "
          f"{summary['tokens_per_second']:.0f} tokens/s)")


if __name__ == "__main__":
    main()
