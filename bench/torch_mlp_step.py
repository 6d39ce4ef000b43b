"""PyTorch peer of mlp_step_bench: one training step of the same MLP
(Flatten, 784-512-256-10, SGD momentum 0.9, cross-entropy), tensors
preloaded, at a given batch size and thread count.

Run it with Debian's python3-torch as bench/peer_env.sh's peer_python
does (tuned glibc malloc, OpenBLAS's OpenMP build on its own kernel); prints
"batch=64 threads=1 samples_per_s=..." like the C++ driver.
"""
import argparse
import statistics
import time

import torch


def time_per_call(fn, seconds):
    for _ in range(20):
        fn()
    rounds = []
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            for _ in range(10):
                fn()
            calls += 10
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    t = time_per_call(step, args.seconds)
    print(f"batch={args.batch} threads={torch.get_num_threads()} "
          f"samples_per_s={args.batch / t:.0f} step_us={t * 1e6:.1f}")


if __name__ == "__main__":
    main()
