"""An independent, strict safetensors reader (the format's rules, checked
one by one) that loads a Nightshift model file into a PyTorch module.

usage: read_safetensors.py MODEL.safetensors LAYER_SPEC...
where each LAYER_SPEC is flatten, relu or dense:IN:OUT, in model order.
Exits non-zero with a message if any rule is broken or the parameters do
not load into torch.nn.Sequential under the same names.
"""
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "header runs past the file"
    assert (8 + n) % 8 == 0, "data does not start 8-byte aligned"
    header_bytes = data[8:8 + n]
    assert header_bytes.startswith(b"{"), "header is not a JSON object"
    assert header_bytes.rstrip(b" ").endswith(b"}"), "padding must be spaces"
    header = json.loads(header_bytes.decode("utf-8"))
    buf = data[8 + n:]
    meta = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata must be strings"
    spans = []
    tensors = {}
    for name, info in header.items():
        assert set(info) == {"dtype", "shape", "data_offsets"}, name
        begin, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        count = int(np.prod(info["shape"], dtype=np.int64))
        assert end - begin == count * dtype.itemsize, f"{name}: size mismatch"
        spans.append((begin, end))
        tensors[name] = np.frombuffer(buf[begin:end], dtype=dtype).reshape(info["shape"])
    spans.sort()
    pos = 0
    for begin, end in spans:
        assert begin == pos, "hole or overlap in the data buffer"
        pos = end
    assert pos == len(buf), "data buffer not fully covered"
    return tensors, meta


class Net(torch.nn.Module):
    def __init__(self, layer_specs):
        super().__init__()
        layers = []
        for spec in layer_specs:
            if spec == "flatten":
                layers.append(torch.nn.Flatten())
            elif spec == "relu":
                layers.append(torch.nn.ReLU())
            else:
                _, fan_in, fan_out = spec.split(":")
                layers.append(torch.nn.Linear(int(fan_in), int(fan_out)))
        self.layers = torch.nn.Sequential(*layers)


def main():
    tensors, meta = read(sys.argv[1])
    net = Net(sys.argv[2:])
    state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    net.load_state_dict(state, strict=True)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    print(f"ok: {len(tensors)} tensors, metadata {sorted(meta)}")


if __name__ == "__main__":
    main()
