"""Compares two Nightshift model files tensor by tensor.

usage: compare_models.py A.safetensors B.safetensors TOLERANCE
Exits non-zero, naming the first tensor and element that differ, unless
both files hold the same tensor names, dtypes and shapes and every value
satisfies |a - b| <= TOLERANCE * max(1, |a|) (runs that differ only in
float summation order, such as N data-parallel ranks against one).
"""
import json
import struct
import sys

import numpy as np


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{path}: {name}: dtype {info['dtype']}"
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(info["shape"])
    return out


def main():
    a_path, b_path, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = tensors(a_path), tensors(b_path)
    if sorted(a) != sorted(b):
        sys.exit(f"tensor names differ: {sorted(a)} vs {sorted(b)}")
    worst = 0.0
    for name in sorted(a):
        if a[name].shape != b[name].shape:
            sys.exit(f"{name}: shape {a[name].shape} vs {b[name].shape}")
        diff = np.abs(a[name] - b[name]) / np.maximum(1.0, np.abs(a[name]))
        i = int(np.argmax(diff))
        worst = max(worst, float(diff.flat[i]))
        if diff.flat[i] > tolerance:
            sys.exit(f"{name}[{i}]: {a[name].flat[i]} vs {b[name].flat[i]} (tolerance {tolerance})")
    print(f"{len(a)} tensors agree (largest relative difference {worst:.2e})")


if __name__ == "__main__":
    main()
