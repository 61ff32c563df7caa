"""The whole-step table of bench/NOTES.md and the README from one step-<UTC>.jsonl (`slope bench step` and
bench/pytorch/train_gpt2.py lines of one lease): per model and protocol, tokens/s and dense-equivalent MFU of our dense,
SLoPe at each column-mask refresh found, and PyTorch; peak device memory; and the ratios. A configuration measured more
than once takes its last line. Below the table, for each SLoPe line, which 2:4 dX shapes ran on the masked dense GEMM
(the faster when first timed, `dx_choices`). Our lines whose micro-batches replayed a CUDA Graph (`graphs`, ADR 044)
form rows of their own, "(b, graphs)", beside the eager ones and compared with the same protocol's PyTorch. Usage: step_table.py step-<UTC>.jsonl
"""
import json
import sys

MODELS = ["gpt2-124M", "gpt2-350M", "gpt2-774M", "gpt2-1558M", "d2560"]


def tokens(x):
    return f"{x / 1e3:.1f}K"


def ratio(a, b):
    return f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}" if a and b else "–"


def with_mfu(line):
    return f"{tokens(line['tokens_per_s'])} ({100 * line['mfu']:.1f}%)" if line else "–"


def gb(line):
    return f"{line['peak_gb']:.1f}" if line and line.get("peak_gb") is not None else "–"


def main(path):
    lines = [json.loads(text) for text in open(path) if text.strip()]
    runs = {}
    for line in lines:
        protocol = line["protocol"] + (", graphs" if line.get("graphs") else "")
        runs[(line["model"], protocol, line["system"], line["mode"], line.get("refresh"))] = line
    refreshes = sorted({key[4] for key in runs if key[2] == "slope" and key[3] == "slope"})
    slope_cols = [f"SLoPe r={r}" for r in refreshes]
    print(f"Devices: {', '.join(sorted({l['device'] for l in lines}))}; commits: "
          f"{', '.join(sorted({l['commit'] for l in lines}))}; {lines[0]['utc']} to {lines[-1]['utc']}. "
          "Tokens/s are medians of whole optimizer steps, MFU dense-equivalent ((6N + 12·L·T·d) per token over "
          "989 TF/s); peak GB: ours from cuMemGetInfo (what the run added), PyTorch's max_memory_allocated.")
    print()
    header = ["model", "protocol", "ours dense", *slope_cols, "PyTorch",
              "peak GB " + " / ".join(["dense", *slope_cols, "PyTorch"]), "dense/PyTorch",
              *(f"{c}/dense" for c in slope_cols), *(f"{c}/PyTorch" for c in slope_cols)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    models = sorted({key[0] for key in runs}, key=lambda m: (MODELS.index(m) if m in MODELS else len(MODELS), m))
    for model in models:
        for protocol in sorted({key[1] for key in runs if key[0] == model},
                               key=lambda p: (p.split(",")[0], "," not in p), reverse=True):
            dense = runs.get((model, protocol, "slope", "dense", None))
            slopes = [runs.get((model, protocol, "slope", "slope", r)) for r in refreshes]
            torch = runs.get((model, protocol.split(",")[0], "pytorch", "dense", None))
            cells = [model, f"({protocol})", with_mfu(dense), *map(with_mfu, slopes), with_mfu(torch),
                     " / ".join(gb(x) for x in [dense, *slopes, torch]), ratio(dense, torch),
                     *(ratio(s, dense) for s in slopes), *(ratio(s, torch) for s in slopes)]
            print("| " + " | ".join(cells) + " |")
    dense_dx = [(key, sorted(shape for shape, c in line["dx_choices"].items() if c == "dense"))
                for key, line in runs.items() if line.get("dx_choices")]
    if dense_dx:
        print()
        for (model, protocol, _, mode, refresh), shapes in dense_dx:
            print(f"- {model} ({protocol}) {mode} r={refresh}: dX on dense for "
                  + (", ".join(shapes) if shapes else "no shape (all 2:4)"))


if __name__ == "__main__":
    main(sys.argv[1])
