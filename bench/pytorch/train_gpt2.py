"""PyTorch baseline for `slope bench` (bench/NOTES.md): dense GPT-2 (learned positions, pre-LayerNorm, GELU-tanh, tied
head, padded vocabulary 50304), bf16 autocast, flash SDPA, fused AdamW, torch.compile; the same micro-batch and tokens
per optimizer step as our runs. Prints one JSON line per configuration.

Usage: python3 train_gpt2.py LAYERS HEADS D_MODEL SEQ BATCH ACCUM STEPS
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.heads, C // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, layers, heads, d, seq, vocab=50304):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def main():
    layers, heads, d, seq, batch, accum, steps = (int(a) for a in sys.argv[1:8])
    torch.manual_seed(0)
    model = Gpt(layers, heads, d, seq).cuda()
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once, positions included
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    compiled = torch.compile(model)
    x = torch.randint(0, 50257, (batch, seq), device="cuda")
    y = torch.randint(0, 50257, (batch, seq), device="cuda")

    def step():
        for _ in range(accum):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = compiled(x, y) / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    tokens = batch * seq * accum
    flop_per_token = 6 * n_params + 12 * layers * seq * d
    print(json.dumps({"system": "pytorch", "torch": torch.__version__, "layers": layers, "dModel": d, "seqLen": seq,
                      "batch": batch, "gradAccum": accum, "stepSecondsMedian": median,
                      "tokensPerSecond": tokens / median, "mfu": tokens / median * flop_per_token / 989e12,
                      "peakBytes": torch.cuda.max_memory_allocated()}), flush=True)


if __name__ == "__main__":
    main()
