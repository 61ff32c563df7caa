"""An independent PyTorch reference for bench/quality's Gutenberg runs (issue 18): the same GPT-2 shape, data, schedule
and optimizer as a `slope train` spec of bench/quality, trained by stock PyTorch, so that our own validation losses can
be checked against a second implementation. Modes: `dense`, and `static-2:4` (each linear weight but block 0's qkv
masked to its 2 largest |w| of every 4 along d_in at initialisation, the gradient masked: sparse-no-double-prune).

What matches ours (docs/spec.md, docs/method.md): learned positions, pre-LayerNorm (eps 1e-5), GELU-tanh, tied head;
weights N(0, 0.02), the residual projections 0.02/sqrt(2L), biases 0; AdamW (β 0.9/0.95, ε 1e-8, weight decay 0.1 on
embeddings and linear weights, none on biases and LayerNorm), global-norm clipping at 1.0; linear warmup over 1% of the
steps then linear decay to minLrRatio; random training windows of T + 1 tokens; validation on the first W windows of
T + 1 tokens of the held-out split, laid end to end. What differs: bf16 autocast instead of our bf16 GEMMs, and the
random streams (init, windows), so a seed here is not a seed there.

Reads a prepared dataset folder (dataset.json with train-*.tok and val-*.tok shards, docs/formats.md "Token shards").

Usage: gutenberg_reference.py --data DATASET_DIR --mode dense --lr 3e-4 --steps 1024 --out FILE.jsonl
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn

from train_gpt2 import Gpt  # the throughput baseline's model: the same GPT-2, initialised below as ours


def read_shards(folder, shards):
    parts = []
    for shard in shards:
        with open(os.path.join(folder, shard["file"]), "rb") as f:
            head = f.read(32)
            if head[:8] != b"SLOPETOK":
                raise SystemExit(f"{shard['file']}: not a token shard (magic {head[:8]!r})")
            header_length, = struct.unpack_from("<i", head, 12)
            count, = struct.unpack_from("<q", head, 16)
            width = head[28]
            dtype = np.uint16 if width == 2 else np.int32
            tokens = np.fromfile(f.name, dtype=dtype, offset=header_length)
            if len(tokens) != count:
                raise SystemExit(f"{shard['file']}: {len(tokens)} tokens, header says {count}")
            parts.append(tokens.astype(np.int64))
    return np.concatenate(parts)


def init_as_ours(model, layers):
    """GptModel.initialWeights' distribution: N(0, 0.02), residual projections 0.02/sqrt(2L), biases 0, LayerNorm 1."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif ".ln_" in name or name.startswith("ln_f"):
            nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
            nn.init.normal_(p, std=std)


def two_of_four_masks(model):
    """The static row masks of sparse-no-double-prune: every linear weight but block 0's qkv (denseFirstQkv)."""
    masks = {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and name.startswith("blocks.") and not name.startswith("blocks.0.c_attn"):
            groups = p.detach().abs().view(p.shape[0], -1, 4)
            order = groups.argsort(dim=-1, descending=True, stable=True)
            keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., :2], True)
            masks[name] = keep.view_as(p)
    return masks


def inputs_and_targets(rows):
    """A window's first T tokens and the next T, contiguous as the model's view of the targets needs."""
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def lr_at(t, peak, warmup, steps, min_ratio):
    if t < warmup:
        return peak * (t + 1) / warmup
    return peak * (min_ratio + (1 - min_ratio) * max(0.0, (steps - t) / (steps - warmup)))


@torch.no_grad()
def validation_loss(model, val, seq, windows, batch, device):
    rows = min(windows, len(val) // (seq + 1))
    data = torch.from_numpy(val[:rows * (seq + 1)]).view(rows, seq + 1).to(device)
    total = 0.0
    for i in range(0, rows, batch):
        chunk = data[i:i + batch]
        with torch.autocast("cuda" if device.type == "cuda" else "cpu", dtype=torch.bfloat16):
            total += model(*inputs_and_targets(chunk)).item() * len(chunk)
    return total / rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepared dataset folder (dataset.json and its shards)")
    parser.add_argument("--mode", choices=["dense", "static-2:4"], default="dense")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--min-lr-ratio", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--eval-every", type=int, help="default steps/10, as bench/quality")
    parser.add_argument("--eval-windows", type=int, default=256)
    parser.add_argument("--out", required=True, help="JSON lines: one per evaluation, then a summary")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    meta = json.load(open(os.path.join(args.data, "dataset.json")))
    train = read_shards(args.data, meta["trainShards"])
    val = read_shards(args.data, meta["validationShards"])
    model = Gpt(args.layers, args.heads, args.d, args.seq_len, meta["vocabSize"])
    init_as_ours(model, args.layers)
    model = model.to(device)
    masks = two_of_four_masks(model) if args.mode == "static-2:4" else {}
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        params[name].data.mul_(keep)
        params[name].register_hook(lambda g, keep=keep: g * keep)
    decay = [p for n, p in params.items() if p.dim() == 2]
    no_decay = [p for n, p in params.items() if p.dim() != 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")
    warmup = args.steps // 100
    every = args.eval_every or max(1, args.steps // 10)
    generator = np.random.default_rng(args.seed)
    tags = {"system": "pytorch", "mode": args.mode, "lr": args.lr, "min_lr_ratio": args.min_lr_ratio,
            "seed": args.seed, "layers": args.layers, "d": args.d, "seq_len": args.seq_len,
            "batch_size": args.batch_size, "steps": args.steps, "torch": torch.__version__}
    out = open(args.out, "a")
    started = time.time()
    for t in range(args.steps):
        starts = generator.integers(0, len(train) - args.seq_len, size=args.batch_size)
        rows = torch.from_numpy(np.stack([train[s:s + args.seq_len + 1] for s in starts])).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(t, args.lr, warmup, args.steps, args.min_lr_ratio)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(*inputs_and_targets(rows))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (t + 1) % every == 0 or t + 1 == args.steps:
            v = validation_loss(model, val, args.seq_len, args.eval_windows, args.batch_size, device)
            line = dict(kind="eval", **tags, step=t + 1, train_loss=loss.item(), val_loss=v,
                        seconds=time.time() - started)
            print(json.dumps(line), flush=True)
            out.write(json.dumps(line) + "\n")
            out.flush()
    tokens = args.steps * args.batch_size * args.seq_len
    summary = dict(kind="summary", **tags, val_loss=v, train_tokens=tokens, seconds=time.time() - started)
    print(json.dumps(summary), flush=True)
    out.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
