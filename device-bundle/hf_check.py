"""Issue 14: Hugging Face transformers loads the hf/ export of a finished `slope train` run (GPT2LMHeadModel, fp32,
eager attention, no TF32) and computes the validation loss on exactly the windows our evaluation used: the run's own
dataset/val-*.tok shards (docs/formats.md, "Token shards") cut into non-overlapping windows of seqLen + 1 tokens from
the start, the first eval.maxWindows of them when that is positive (ValidationWindows), the loss being the mean over
every target position. Pass: |ours val_loss_merged - HF's| <= 1e-3 (--tolerance).
Usage: hf_check.py RUN_DIR TRAIN_LOG [--tolerance T]   (TRAIN_LOG's last JSON line is the run's summary).
Prints one JSON object; exits 1 when the check fails."""
import argparse
import json
import math
import os
import struct

import numpy as np


def read_shard(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"SLOPETOK":
        raise ValueError(f"{path}: not a token shard")
    version, header, count, vocab, width = struct.unpack_from("<IIQIB", data, 8)
    if version != 1 or width not in (2, 4):
        raise ValueError(f"{path}: version {version}, token width {width}")
    dtype = np.dtype("<u2") if width == 2 else np.dtype("<i4")
    tokens = np.frombuffer(data, dtype=dtype, count=count, offset=header)
    if len(data) != header + count * width:
        raise ValueError(f"{path}: {len(data)} bytes, expected {header + count * width}")
    return tokens.astype(np.int64), vocab


def val_windows(run):
    """The run's validation windows as [count, seqLen + 1] int64 (ValidationWindows), and seqLen."""
    with open(os.path.join(run, "spec.json")) as f:
        spec = json.load(f)
    with open(os.path.join(run, "dataset", "dataset.json")) as f:
        manifest = json.load(f)
    seq_len, max_windows = spec["model"]["seqLen"], spec["eval"]["maxWindows"]
    val = np.concatenate([read_shard(os.path.join(run, "dataset", s["file"]))[0]
                          for s in manifest["validationShards"]])
    if len(val) != manifest["validationTokens"]:
        raise ValueError(f"{run}: {len(val)} validation tokens, the manifest says {manifest['validationTokens']}")
    row = seq_len + 1
    count = len(val) // row
    if max_windows > 0:
        count = min(count, max_windows)
    return val[: count * row].reshape(count, row).copy(), seq_len


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("log")
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    import torch  # the device's venv has them; read_shard and val_windows need only numpy
    from transformers import AutoTokenizer, GPT2LMHeadModel

    with open(args.log) as f:
        summary = json.loads([line for line in f if line.startswith("{")][-1])
    val, seq_len = val_windows(args.run)
    count = len(val)
    windows = torch.from_numpy(val)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf = os.path.join(args.run, "hf")
    model = GPT2LMHeadModel.from_pretrained(hf, attn_implementation="eager").float().to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(hf)
    total = 0.0
    with torch.no_grad():
        for first in range(0, count, args.batch):
            rows = windows[first:first + args.batch].to(device)
            logits = model(rows[:, :seq_len]).logits.float()
            losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                       rows[:, 1:].reshape(-1), reduction="none")
            total += losses.double().sum().item()
    hf_loss = total / (count * seq_len)
    ours = summary["val_loss_merged"]
    diff = abs(ours - hf_loss)
    ok = math.isfinite(hf_loss) and diff <= args.tolerance and len(tokenizer) == model.config.vocab_size
    print(json.dumps({"windows": count, "seq_len": seq_len,
                      "vocab": model.config.vocab_size, "tokenizer_vocab": len(tokenizer), "device": device,
                      "torch": torch.__version__, "val_loss_merged_ours": ours, "val_loss_hf": hf_loss,
                      "abs_diff": diff, "tolerance": args.tolerance,
                      "val_loss_adapters_ours": summary.get("val_loss_adapters"),
                      "val_loss_inference_form_ours": summary.get("val_loss_inference_form"),
                      "backend": summary.get("backend"), "pass": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
