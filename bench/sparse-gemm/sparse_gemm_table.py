#!/usr/bin/env python3
"""One table of device.sh's sparsegemm phase: CUTLASS's 2:4 GEMM (sparse_gemm_bench's JSON lines) beside cuSPARSELt's
2:4 and cuBLASLt's dense GEMM (slope bench gemm's JSON lines) per weight shape and GEMM, in ms, and the sums per model
layer (the four weights, forward and dX). Both times are means of back-to-back runs between two CUDA events (50 for
CUTLASS, the best of its tiles; 20 for GemmBench), so that they compare; CUTLASS's medians are in its own output.

Usage: sparse_gemm_table.py CUTLASS_OUTPUT GEMMBENCH_JSONL
"""
import json
import sys


def json_lines(path):
    """The JSON objects among path's lines; none if path is missing (its program failed: the other half still shows)."""
    try:
        f = open(path)
    except OSError as e:
        print(f"({e})\n")
        return
    with f:
        for line in f:
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    pass


def main(cutlass_path, gemmbench_path):
    cutlass = list(json_lines(cutlass_path))
    best = {}  # (weight, gemm, variant) -> (ms, tile) of the fastest tile that passed its check
    failed = set()
    for r in cutlass:
        if r.get("system") != "cutlass-sparse":
            continue
        key = (r["weight"], r["gemm"], r["variant"])
        if not r["ok"] or r["mean_ms"] is None:
            failed.add(key)
            continue
        if key not in best or r["mean_ms"] < best[key][0]:
            best[key] = (r["mean_ms"], r["tile"].split(" ")[0])
    lt = {f'{r["dOut"]}x{r["dIn"]}': r for r in json_lines(gemmbench_path) if "sparseFwdMs" in r}
    weights = list(dict.fromkeys([k[0] for k in best] + [k[0] for k in failed] + list(lt)))

    def ms(v):
        return f"{v:.4f}" if v is not None else "–"

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "–"

    def cell(key):  # CUTLASS's best ms and its tile
        b = best.get(key)
        return (f"{b[0]:.4f} ({b[1]})" if b else "–") + (" FAILED" if key in failed else "")

    print("| weight | GEMM | cuBLASLt dense | cuSPARSELt 2:4 | CUTLASS 2:4 (tile) | CUTLASS/cuSPARSELt "
          "| CUTLASS fused epilogue (tile) | fused/unfused |")
    print("|---|---|---|---|---|---|---|---|")
    layer = {}  # d_model -> [cuSPARSELt sum, CUTLASS sum, count]
    for w in weights:
        for gemm, variant, fused, dense_key, sparse_key in (
                ("fwd", "bias", "gelu-aux", "denseFwdMs", "sparseFwdMs"),
                ("dx", "plain", "dgelu-dbias", "denseDxMs", "sparseDxMs")):
            g = lt.get(w, {})
            c = best.get((w, gemm, variant))
            a = best.get((w, gemm, fused))
            print(f"| {w} | {gemm} | {ms(g.get(dense_key))} | {ms(g.get(sparse_key))} | {cell((w, gemm, variant))} "
                  f"| {ratio(c and c[0], g.get(sparse_key))} | {cell((w, gemm, fused))} "
                  f"| {ratio(a and a[0], c and c[0])} |")
            d_model = min(int(x) for x in w.split("x"))
            s = layer.setdefault(d_model, [0.0, 0.0, 0])
            if c and g.get(sparse_key):
                s[0] += g[sparse_key]
                s[1] += c[0]
                s[2] += 1
    print()
    for d_model, (lt_sum, cutlass_sum, n) in sorted(layer.items()):
        if n:
            print(f"d = {d_model}: the {n} GEMMs above sum to {lt_sum:.3f} ms on cuSPARSELt and {cutlass_sum:.3f} ms on "
                  f"CUTLASS (bias epilogue; ratio {cutlass_sum / lt_sum:.2f}; < 1 means CUTLASS is faster)")
    print("\nCUTLASS's fwd carries a per-row bias, cuSPARSELt's none; its dx is the same kernel with no bias. "
          "The fused epilogues: fwd gelu-aux writes GELU(acc + bias) and acc + bias, both bf16; dx dgelu-dbias "
          "(fc2's weights) reads the pre-activation z and writes dGELU(acc, z) and its sum over the rows in fp32, "
          "what the GELU backward pass and the bias's column sums do beside cuSPARSELt.")
    in_place = [r for r in cutlass if r.get("system") == "cutlass-sparse-in-place"]
    if in_place:
        same = [r for r in in_place if not r["value_bytes_differing"] and not r["metadata_bytes_differing"]]
        print(f"\nCUTLASS's operands written in place by our rule (values row-major, metadata by its layout of E): "
              f"{len(same)} of {len(in_place)} weights byte for byte equal to its compressor's"
              + "".join(f"; {r['weight']} {r['gemm']}: {r['value_bytes_differing']} value and "
                        f"{r['metadata_bytes_differing']} metadata bytes differ" for r in in_place if r not in same))
    if failed:
        print(f"\nFAILED CUTLASS checks or runs: {sorted(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
