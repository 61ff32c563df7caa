"""PyTorch baseline for `slope bench step` (bench/NOTES.md): dense GPT-2 (learned positions, pre-LayerNorm, GELU-tanh,
tied head, padded vocabulary 50304) trained as fast as stock PyTorch allows: TF32 for every fp32 matmul, bf16 autocast,
flash SDPA, fused AdamW, torch.compile of the whole forward and loss. Same micro-batch and tokens per optimizer step as
ours (protocol a: 64 micro-batches of 8 x 1024, b: one); median of whole optimizer steps after the warm-up (which
includes compilation), each step closed by torch.cuda.synchronize(). Prints one JSON line per protocol in the schema of
`slope bench step` (system "pytorch") and appends it to --results.

Usage: train_gpt2.py --model gpt2-124M --protocol b a --steps 5 --results step-<UTC>.jsonl
"""
import argparse
import contextlib
import datetime
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# The shapes of `slope bench step --model` (StepBench.PRESETS): layers, heads, d_model.
PRESETS = {
    "gpt2-124M": (12, 12, 768),
    "gpt2-350M": (24, 16, 1024),
    "gpt2-774M": (36, 20, 1280),
    "gpt2-1558M": (48, 25, 1600),
    "d2560": (32, 40, 2560),
}
MICRO_BATCHES = {"a": 64, "b": 1}
SDPA = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION, "auto": None}
PEAK_FLOPS = 989e12  # dense bf16 H100, for the dense-equivalent MFU of every system


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
    def __init__(self, layers, heads, d, seq, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() >= 2:  # N(0, 0.02) like ours; LayerNorm and biases keep their 1 and 0
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        # Autocast runs cross_entropy in fp32 itself; no explicit fp32 copy of the logits for compile to keep.
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def arguments():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gpt2-124M", help="a preset of " + ", ".join(PRESETS) + ", or custom")
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--d-model", type=int)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--batch", type=int, default=8, help="sequences per micro-batch")
    p.add_argument("--protocol", nargs="+", default=["b"], choices=sorted(MICRO_BATCHES),
                   help="one or more; the model is compiled once for all")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, compilation included")
    p.add_argument("--steps", type=int, default=10, help="timed steps; their median is reported")
    p.add_argument("--compile-mode", default="default",
                   choices=["default", "max-autotune-no-cudagraphs", "max-autotune", "none"],
                   help="torch.compile mode; max-autotune-no-cudagraphs searches GEMM tilings (minutes of compile)")
    p.add_argument("--sdpa", default="flash", choices=sorted(SDPA),
                   help="the attention kernels SDPA may use (auto: PyTorch's own choice)")
    p.add_argument("--results", default=os.environ.get("SLOPE_BENCH_RESULTS"),
                   help="append the JSON lines here (default $SLOPE_BENCH_RESULTS; none: print only)")
    p.add_argument("--commit", default=os.environ.get("SLOPE_COMMIT", "unknown"))
    a = p.parse_args()
    if a.model == "custom":
        if None in (a.layers, a.heads, a.d_model):
            p.error("--model custom needs --layers, --heads and --d-model")
    elif a.model in PRESETS:
        a.layers, a.heads, a.d_model = PRESETS[a.model]
    else:
        p.error(f"--model: unknown {a.model!r}; allowed: {', '.join(PRESETS)}, custom")
    return a


def measure(a, model, compiled, opt, accum):
    x = torch.randint(0, a.vocab, (a.batch, a.seq_len), device="cuda")
    y = torch.randint(0, a.vocab, (a.batch, a.seq_len), device="cuda")

    def step():
        for _ in range(accum):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = compiled(x, y) / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    millis = []
    for _ in range(a.steps):
        start = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        millis.append((time.perf_counter() - start) * 1e3)
    return sorted(millis)[len(millis) // 2], loss.item() * accum


def main():
    a = arguments()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    model = Gpt(a.layers, a.heads, a.d_model, a.seq_len, a.vocab).cuda()
    params = sum(p.numel() for p in model.parameters())  # tied head counted once, positions included
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    compiled = model if a.compile_mode == "none" else torch.compile(model, mode=a.compile_mode)
    flop_per_token = 6 * params + 12 * a.layers * a.seq_len * a.d_model
    device = torch.cuda.get_device_name()
    for protocol in a.protocol:
        accum = MICRO_BATCHES[protocol]
        # Entered around compilation and every step: the kernel is chosen when the graph is traced.
        with sdpa_kernel(SDPA[a.sdpa]) if SDPA[a.sdpa] else contextlib.nullcontext():
            median_ms, loss = measure(a, model, compiled, opt, accum)
        tokens_per_s = a.batch * a.seq_len * accum / (median_ms / 1e3)
        free, total = torch.cuda.mem_get_info()
        line = {"system": "pytorch", "model": a.model, "mode": "dense", "refresh": None, "protocol": protocol,
                "tokens_per_s": round(tokens_per_s), "mfu": tokens_per_s * flop_per_token / PEAK_FLOPS,
                "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
                "device_used_gb": round((total - free) / 1e9, 3),
                "peak_source": "torch.cuda.max_memory_allocated over the timed steps",
                "step_ms_median": round(median_ms, 3), "device": device, "commit": a.commit,
                "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "layers": a.layers, "heads": a.heads, "d_model": a.d_model, "seq_len": a.seq_len, "vocab": a.vocab,
                "batch": a.batch, "accum": accum, "steps": a.steps, "params": params, "loss": round(loss, 4),
                "torch": torch.__version__, "compile_mode": a.compile_mode, "sdpa": a.sdpa}
        print(json.dumps(line), flush=True)
        if a.results:
            with open(a.results, "a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
