"""gRPC status calls under load: CONNECTIONS concurrent callers of
Coordinator.ListJobs for SECONDS, each on its own channel, paced to RATE
calls/s in all (0: as fast as they go). Prints one line:
"calls/s p50_ms p99_ms errors cpu_seconds" (the last: this process's
own CPU time, to tell its cost from the coordinator's).

  grpc_status_load.py STUBS ADDRESS CA CERT KEY TOKEN CONNECTIONS SECONDS RATE

STUBS is a folder of Python stubs protoc made from proto/ (run_status_api.sh
makes them). Mutual TLS with the cluster's client certificate, as the CLI.
"""
import asyncio
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from nightshift.v1 import coordinator_pb2 as pb  # noqa: E402
from nightshift.v1 import coordinator_pb2_grpc as rpc  # noqa: E402

_, _, ADDRESS, CA, CERT, KEY, TOKEN, CONNECTIONS, SECONDS, RATE = sys.argv
CONNECTIONS, SECONDS, RATE = int(CONNECTIONS), float(SECONDS), float(RATE)


def read(path):
    with open(path, "rb") as f:
        return f.read()


async def caller(creds, end, latencies, errors):
    async with grpc.aio.secure_channel(ADDRESS, creds) as channel:
        stub = rpc.CoordinatorStub(channel)
        meta = [("authorization", "Bearer " + TOKEN)]
        await stub.ListJobs(pb.ListJobsRequest(), metadata=meta)  # connected before the clock
        interval = CONNECTIONS / RATE if RATE > 0 else 0
        next_at = time.monotonic()
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                await stub.ListJobs(pb.ListJobsRequest(), metadata=meta, timeout=2)
                latencies.append(time.monotonic() - start)
            except grpc.RpcError:
                errors.append(1)
            if interval:
                next_at += interval
                await asyncio.sleep(max(0, next_at - time.monotonic()))


async def main():
    creds = grpc.ssl_channel_credentials(read(CA), read(KEY), read(CERT))
    latencies, errors = [], []
    start = time.monotonic()
    end = start + SECONDS
    await asyncio.gather(*[caller(creds, end, latencies, errors) for _ in range(CONNECTIONS)])
    elapsed = time.monotonic() - start
    latencies.sort()
    p = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
    print("%.0f %.2f %.2f %d %.2f" % (len(latencies) / elapsed, p(0.5), p(0.99), len(errors),
                                      time.process_time()))


asyncio.run(main())
