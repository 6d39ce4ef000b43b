"""PyTorch peer of `nightshift predict`: the same model file (read with
tests/read_safetensors.py; its model_spec metadata gives the layers), the
same Fashion-MNIST test images scaled the same way, the same loop: one
untimed warm-up batch, then every full batch timed, over --repeat passes,
under torch.inference_mode().

Run it as bench/peer_env.sh's peer_python runs Debian's PyTorch (tuned
glibc malloc, OpenBLAS's OpenMP build on its own kernel). Prints the line
nightshift predict prints: "accuracy ..." then "batch B: latency per batch
p50 X ms, p99 Y ms; Z us per sample; N samples/s ...".
"""
import argparse
import gzip
import importlib.util
import os
import re
import time

import numpy as np
import torch


def load_reader():
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "read_safetensors.py")
    spec = importlib.util.spec_from_file_location("read_safetensors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def build(tensors, meta):
    """torch.nn.Sequential from the file's model_spec (flatten, dense, relu)."""
    layers = []
    for i, kind in enumerate(re.findall(r"layers \{ (\w+)", meta["model_spec"])):
        if kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "dense":
            w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
            linear = torch.nn.Linear(w.shape[1], w.shape[0])
            linear.weight.data = torch.from_numpy(w.copy())
            linear.bias.data = torch.from_numpy(b.copy())
            layers.append(linear)
        else:
            raise SystemExit(f"torch_predict.py: layer {i} is {kind}, which this peer does not build")
    return torch.nn.Sequential(*layers).eval()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("images")
    p.add_argument("labels")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tensors, meta = load_reader().read(args.model)
    model = build(tensors, meta)
    shape = [int(d) for d in meta["input_shape"].split(",")]
    mean, std = float(meta["normalize_mean"]), float(meta["normalize_std"])
    x = idx(args.images).astype(np.float32) / 255.0
    if std > 0:
        x = (x - mean) / std
    x = torch.from_numpy(x.reshape([-1] + shape).copy())
    labels = torch.from_numpy(idx(args.labels).astype(np.int64))
    n, batch = x.shape[0], min(args.batch_size, x.shape[0])
    with torch.inference_mode():
        model(x[:batch])  # warm-up, untimed
        times, correct, samples = [], 0, 0
        start = time.perf_counter()
        for rep in range(args.repeat):
            for first in range(0, n, batch):
                chunk = x[first:first + batch]
                t0 = time.perf_counter()
                logits = model(chunk)
                took = time.perf_counter() - t0
                if chunk.shape[0] == batch:
                    times.append(took)
                samples += chunk.shape[0]
                if rep == 0:
                    correct += int((logits.argmax(1) == labels[first:first + batch]).sum())
        total = time.perf_counter() - start
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(q * (len(times) - 1) + 0.5))]
    print(f"accuracy {100.0 * correct / n:.2f}% ({correct} of {n} images)")
    print(f"batch {batch}: latency per batch p50 {1e3 * pct(0.5):.4f} ms, p99 {1e3 * pct(0.99):.4f} ms; "
          f"{1e6 * total / samples:.3f} us per sample; {samples / total:.0f} samples/s "
          f"({n} images x {args.repeat} passes, {args.threads} threads)")


if __name__ == "__main__":
    main()
