"""The inference table of bench/NOTES.md from one infer-<UTC>.jsonl (`slope bench infer`): per model, tokens/s of
prefill (B × 1024) and KV-cache decoding at each batch, dense vs SLoPe's inference form, and their ratio; for decoding
also SLoPe on cuSPARSELt's padded path (mode slope-cusparselt, the few-rows kernel off). A configuration measured more
than once takes its last line. Usage: infer_table.py infer-<UTC>.jsonl
"""
import json
import sys

MODELS = ["gpt2-124M", "gpt2-350M", "gpt2-774M", "gpt2-1558M", "d2560"]


def tps(line):
    return f"{line['tokens_per_s']:,}" if line else "–"


def main(path):
    lines = [json.loads(text) for text in open(path) if text.strip()]
    runs = {(l["model"], l["phase"], l["batch"], l["mode"]): l for l in lines}
    print(f"Devices: {', '.join(sorted({l['device'] for l in lines}))}; commits: "
          f"{', '.join(sorted({l['commit'] for l in lines}))}; {lines[0]['utc']} to {lines[-1]['utc']}. "
          "Tokens/s are medians (prefill: repeats of B full contexts; decode: tokens after a "
          f"{lines[0]['prompt_length']}-token prompt, logits downloaded per token).")
    print()
    print("| model | phase | batch | dense tokens/s | SLoPe tokens/s (adapter rank) | SLoPe/dense "
          "| SLoPe on cuSPARSELt padded tokens/s |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted({k[:3] for k in runs}, key=lambda k: (MODELS.index(k[0]) if k[0] in MODELS else len(MODELS),
                                                         k[0], k[1] != "prefill", k[2]))
    for model, phase, batch in keys:
        dense = runs.get((model, phase, batch, "dense"))
        slope = runs.get((model, phase, batch, "slope"))
        padded = runs.get((model, phase, batch, "slope-cusparselt"))
        ratio = f"{slope['tokens_per_s'] / dense['tokens_per_s']:.2f}" if dense and slope else "–"
        rank = f" ({slope['adapter_rank']})" if slope else ""
        print(f"| {model} | {phase} | {batch} | {tps(dense)} | {tps(slope)}{rank} | {ratio} | {tps(padded)} |")

if __name__ == "__main__":
    main(sys.argv[1])
