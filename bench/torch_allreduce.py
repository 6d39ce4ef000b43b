"""torch.distributed all_reduce with the gloo backend: the peer of
allreduce_bench. Start one process per rank:
    torch_allreduce.py --rank R --size N --port P
Rank 0 prints lines in allreduce_bench's format (impl=gloo ...).
"""
import argparse
import time

import torch
import torch.distributed as dist


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sizes", default="4096,65536,1048576,16777216,67108864")
    p.add_argument("--seconds", type=float, default=1.0)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}",
                            rank=a.rank, world_size=a.size)
    for nbytes in map(int, a.sizes.split(",")):
        t = torch.ones(nbytes // 4)
        for _ in range(3):
            dist.all_reduce(t)
        start = time.perf_counter()
        dist.all_reduce(t)
        iters = torch.tensor([max(5.0, min(2000.0, a.seconds / (time.perf_counter() - start)))])
        dist.broadcast(iters, 0)
        dist.barrier()
        n = int(iters.item())
        start = time.perf_counter()
        for _ in range(n):
            dist.all_reduce(t)
        sec = (time.perf_counter() - start) / n
        if a.rank == 0:
            algbw = nbytes / sec / 1e9
            print(f"impl=gloo ranks={a.size} bytes={nbytes} us={sec * 1e6:.1f} "
                  f"algbw_gbps={algbw:.3f} busbw_gbps={algbw * 2 * (a.size - 1) / a.size:.3f}",
                  flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
