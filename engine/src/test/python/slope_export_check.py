"""Independent reader of a slope/ export, written from docs/formats.md alone, checked against an hf/ export.

It verifies every file's size and sha256 against manifest.json, unpacks the bit-packed masks as documented (row by
row, least significant bit first: numpy's packbits(axis=1, bitorder="little")), checks the N:M structure (row mask: N
kept per aligned group of M along d_in; column mask: inside the row mask and, in mode slope, at most N per aligned
group of M along d_out), rebuilds each sparse weight W^R by placing row r's kept values at its set bits in increasing column order, adds
the adapters as scale * (A @ B).T, and compares every parameter with the hf/ export of the same model (Conv1D [in,
out] weights transposed back).

Usage: python3 slope_export_check.py SLOPE_DIR HF_DIR
  stdout: JSON {"errors": {our parameter name: normwise relative error against hf/}, "sparse_layers": count,
                "adapter_layers": count}
Exit code 1 with a message when the export breaks the documented layout; 3 when a package is missing.
Requirements: requirements.txt beside this file.
"""
import hashlib
import json
import os
import sys

MISSING_PACKAGE = 3


def read_tensors(path):
    from safetensors.numpy import load_file
    return load_file(path)


def verified_files(slope_dir, manifest):
    tensors = {}
    for entry in manifest["files"]:
        path = os.path.join(slope_dir, entry["file"])
        with open(path, "rb") as f:
            content = f.read()
        if len(content) != entry["bytes"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
            sys.exit(f"{path}: size or sha256 differs from manifest.json")
        tensors.update(read_tensors(path))
    return tensors


def hf_name(ours):
    return f"transformer.{ours}.weight" if ours in ("wte", "wpe") else f"transformer.{ours}"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: slope_export_check.py SLOPE_DIR HF_DIR")
    try:
        import numpy as np
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"missing Python package: {e.name} (pip install -r requirements.txt)", file=sys.stderr)
        sys.exit(MISSING_PACKAGE)

    slope_dir, hf_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(slope_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest["formatVersion"] != 1:
        sys.exit(f"unknown formatVersion {manifest['formatVersion']}")
    n, m = manifest["pattern"]["n"], manifest["pattern"]["m"]
    tensors = verified_files(slope_dir, manifest)
    hf = read_tensors(os.path.join(hf_dir, "model.safetensors"))

    ours = {}
    for layer in manifest["sparseLayers"]:
        name, d_out, d_in = layer["name"], layer["dOut"], layer["dIn"]
        values = tensors.pop(name + ".values")
        row_mask = np.unpackbits(tensors.pop(name + ".row_mask"), axis=1, count=d_in, bitorder="little")
        column_mask = np.unpackbits(tensors.pop(name + ".column_mask"), axis=1, count=d_in, bitorder="little")
        if values.shape != (d_out, d_in // m * n) or values.dtype != np.float32:
            sys.exit(f"{name}.values: {values.dtype} {values.shape}")
        if not (row_mask.reshape(d_out, d_in // m, m).sum(axis=2) == n).all():
            sys.exit(f"{name}.row_mask: not {n} kept in every group of {m} along d_in")
        if (column_mask > row_mask).any():
            sys.exit(f"{name}.column_mask keeps entries the row mask prunes")
        double_pruned = manifest["config"]["mode"] == "slope"
        if double_pruned and (column_mask.reshape(d_out // m, m, d_in).sum(axis=1) > n).any():
            sys.exit(f"{name}.column_mask: more than {n} kept in a group of {m} along d_out")
        w = np.zeros((d_out, d_in), dtype=np.float64)
        w[row_mask == 1] = values.astype(np.float64).ravel()  # row-major: row by row, columns increasing
        ours[name] = w

    adapters = manifest["adapters"]
    for layer in (adapters or {}).get("layers", []):
        a = tensors.pop(layer + ".lora_A").astype(np.float64)
        b = tensors.pop(layer + ".lora_B").astype(np.float64)
        if a.shape[1] != adapters["rank"] or b.shape[0] != adapters["rank"]:
            sys.exit(f"{layer}: adapters of rank {a.shape[1]}/{b.shape[0]}, manifest says {adapters['rank']}")
        name = layer + ".weight"
        base = ours[name] if name in ours else tensors.pop(name).astype(np.float64)
        ours[name] = base + adapters["scale"] * (a @ b).T

    for name in list(tensors):
        ours[name] = tensors.pop(name).astype(np.float64)

    errors = {}
    for name, w in ours.items():
        theirs = hf.pop(hf_name(name)).astype(np.float64)
        if name.startswith("h.") and w.ndim == 2:
            theirs = theirs.T  # Conv1D [in, out] back to [out, in]
        if theirs.shape != w.shape:
            sys.exit(f"{name}: shape {w.shape} in slope/, {theirs.shape} in hf/")
        errors[name] = float(np.linalg.norm(w - theirs) / np.linalg.norm(theirs))
    if hf:
        sys.exit(f"hf/ tensors with no counterpart in slope/: {sorted(hf)}")
    json.dump({"errors": errors, "sparse_layers": len(manifest["sparseLayers"]),
               "adapter_layers": len((adapters or {}).get("layers", []))}, sys.stdout)


if __name__ == "__main__":
    main()
