"""Test accuracy of an exported Nightshift MLP, computed independently
(numpy only) from the safetensors file and the Fashion-MNIST IDX files.

usage: evaluate_model.py MODEL.safetensors DATA_DIR MEAN STD

The model is what a spec of flatten, then dense layers with relu between
them, exports: layers.N.weight [out, in] and layers.N.bias [out], applied
in N order. Pixels are scaled to [0, 1], then normalized with MEAN and STD
(the spec's dataset.idx.normalize_mean / normalize_std). Prints
"accuracy A" (a fraction) on the t10k test set.
"""
import gzip
import json
import re
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(info["shape"])
    return tensors


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    model, data_dir, mean, std = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    t = read_safetensors(model)
    layers = sorted({int(m.group(1)) for k in t for m in [re.match(r"layers\.(\d+)\.weight$", k)] if m})
    assert layers, "no layers.N.weight tensors"
    x = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz").astype(np.float64) / 255.0
    y = read_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    x = ((x - mean) / std).reshape(len(x), -1)
    for i, n in enumerate(layers):
        x = x @ t[f"layers.{n}.weight"].astype(np.float64).T + t[f"layers.{n}.bias"]
        if i + 1 < len(layers):
            x = np.maximum(x, 0)
    print(f"accuracy {np.mean(np.argmax(x, axis=1) == y):.4f}")


if __name__ == "__main__":
    main()
