"""PyTorch peer of run_cluster_training.sh: trains the Fashion-MNIST MLP
(784-512-256-10, SGD Nesterov momentum, batch 128 in all) on the real data
set, one process or DDP with gloo, and prints mean samples/s (first 10%
of steps dropped as warm-up).

    torch_train.py --threads=T --steps=N [--ddp_rank=R --ddp_size=S --port=P]
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.distributed as dist

DATA = "/usr/share/datasets/fashion-mnist"


def load():
    with gzip.open(f"{DATA}/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{DATA}/train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.from_numpy(x.astype(np.float32)) / 255 - 0.2860) / 0.3530
    return x, torch.from_numpy(y.astype(np.int64))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--ddp_rank", type=int, default=-1)
    p.add_argument("--ddp_size", type=int, default=1)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x, y = load()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    per_rank = a.batch
    if a.ddp_rank >= 0:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}",
                                rank=a.ddp_rank, world_size=a.ddp_size)
        model = torch.nn.parallel.DistributedDataParallel(model)
        per_rank = a.batch // a.ddp_size
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    perm = torch.randperm(len(x), generator=g)
    warm = max(1, a.steps // 10)
    for step in range(a.steps):
        if step == warm:
            start = time.perf_counter()
        base = (step * a.batch) % (len(x) - a.batch)
        rank_off = max(a.ddp_rank, 0) * per_rank
        idx = perm[base + rank_off: base + rank_off + per_rank]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    sec = time.perf_counter() - start
    if a.ddp_rank <= 0:
        print(f"{(a.steps - warm) * a.batch / sec:.0f}")
    if a.ddp_rank >= 0:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
