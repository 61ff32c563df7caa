"""Independent oracle for the safetensors format, using the reference implementation (huggingface/safetensors).

Usage:
  python3 safetensors_oracle.py read FILE    -> stdout: JSON {"metadata": {...}, "tensors": {name: {dtype, shape, values}}}
  python3 safetensors_oracle.py write FILE   -> writes the fixed tensors below, for the Java reader to check
Exit code 3 with a message on stderr when a needed package is missing. Requirements: requirements.txt beside this file.
"""
import json
import sys

MISSING_PACKAGE = 3


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        sys.exit("usage: safetensors_oracle.py read|write FILE")
    try:
        import numpy as np
        from safetensors import safe_open
        from safetensors.numpy import save_file
    except ImportError as e:
        print(f"missing Python package: {e.name} (pip install -r requirements.txt)", file=sys.stderr)
        sys.exit(MISSING_PACKAGE)

    mode, path = sys.argv[1], sys.argv[2]
    if mode == "write":
        save_file({
            "f64": (np.arange(6, dtype=np.float64) * 0.5 - 1.0).reshape(2, 3),
            "f32": np.array([1.5, -2.25, 3e-8, 65504.0], dtype=np.float32),
            "i32": np.array([[-1, 0], [1, 2**31 - 1]], dtype=np.int32),
            "i64": np.array([-(2**40), 0, 2**62], dtype=np.int64),
            "u8": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
            "empty": np.zeros((0, 3), dtype=np.float32),
        }, path, metadata={"written_by": "safetensors reference"})
        return

    dtype_names = {"float64": "F64", "float32": "F32", "int64": "I64", "int32": "I32", "uint8": "U8"}
    tensors = {}
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
        for name in f.keys():
            array = f.get_tensor(name)
            tensors[name] = {
                "dtype": dtype_names[str(array.dtype)],
                "shape": list(array.shape),
                "values": array.reshape(-1).tolist(),
            }
    json.dump({"metadata": metadata, "tensors": tensors}, sys.stdout)


if __name__ == "__main__":
    main()
