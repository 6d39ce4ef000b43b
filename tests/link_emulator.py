#!/usr/bin/python3
"""A small TCP link emulator for the edge tests: a vehicle's link between
an agent and the coordinator, as a proxy on a loopback port.

  link_emulator.py --target=HOST:PORT --port_file=FILE [--delay_ms=300]
                   [--jitter_ms=0] [--rate_kbps=0] [--cut_after_s=0]
                   [--stats_file=FILE] [--seed=1]

Every byte is held `delay_ms` (± a uniform `jitter_ms`, order kept) in
each direction, so a 600 ms satellite round trip is --delay_ms=300; a
direction's bytes leave no faster than `rate_kbps` (kilobits per second,
0: unlimited), serialized as on a real link; each connection is cut
`cut_after_s` seconds after it opened (both sockets closed at once, the
bytes in flight lost), as a cellular hand-over or a satellite dropout
does. (Per connection, not on one clock for all: with one clock, a
connection opened just before a cut could not finish even its TLS
handshake, and an agent's reconnects, backed off to 10 s, could all
land there for a minute: the test then failed on luck, not on a bug.) The
listening port is written to --port_file once it listens; the stats
(connections, cuts, bytes each way) are rewritten to --stats_file as
JSON every half second. Runs until killed.
"""
import argparse
import asyncio
import json
import os
import random
import time

p = argparse.ArgumentParser()
p.add_argument("--target", required=True)
p.add_argument("--port_file", required=True)
p.add_argument("--delay_ms", type=float, default=300)
p.add_argument("--jitter_ms", type=float, default=0)
p.add_argument("--rate_kbps", type=float, default=0)
p.add_argument("--cut_after_s", type=float, default=0)
p.add_argument("--stats_file", default="")
p.add_argument("--seed", type=int, default=1)
args = p.parse_args()
host, port = args.target.rsplit(":", 1)
rng = random.Random(args.seed)
stats = {"connections": 0, "cuts": 0, "bytes_up": 0, "bytes_down": 0}
open_links = set()


class Direction:
    """One way of one connection: delay, jitter and the rate cap."""

    def __init__(self, reader, writer, key):
        self.reader, self.writer, self.key = reader, writer, key
        self.queue = asyncio.Queue()
        self.wire_free_at = 0.0  # when the link has sent what it holds
        self.last_delivery = 0.0

    async def read(self):
        while True:
            data = await self.reader.read(16384)
            if not data:
                await self.queue.put(None)
                return
            now = time.monotonic()
            start = max(now, self.wire_free_at)
            if args.rate_kbps > 0:
                self.wire_free_at = start + len(data) * 8 / (args.rate_kbps * 1000)
            else:
                self.wire_free_at = start
            jitter = rng.uniform(-args.jitter_ms, args.jitter_ms) if args.jitter_ms else 0
            deliver = max(self.last_delivery, self.wire_free_at + (args.delay_ms + jitter) / 1000)
            self.last_delivery = deliver
            await self.queue.put((deliver, data))

    async def write(self):
        while True:
            item = await self.queue.get()
            if item is None:
                self.writer.write_eof() if self.writer.can_write_eof() else None
                return
            deliver, data = item
            wait = deliver - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.writer.write(data)
            await self.writer.drain()
            stats[self.key] += len(data)


async def handle(client_reader, client_writer):
    stats["connections"] += 1
    try:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
    except OSError:
        client_writer.close()
        return
    up = Direction(client_reader, server_writer, "bytes_up")
    down = Direction(server_reader, client_writer, "bytes_down")
    tasks = tuple(asyncio.ensure_future(t) for t in (up.read(), up.write(), down.read(), down.write()))
    link = (tasks, client_writer, server_writer)
    open_links.add(link)
    if args.cut_after_s > 0:
        asyncio.get_running_loop().call_later(args.cut_after_s, cut, link)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except Exception:
        pass
    finally:
        open_links.discard(link)
        for t in tasks:
            t.cancel()
        for w in (client_writer, server_writer):
            w.close()


def cut(link):
    if link not in open_links:  # closed by its ends already
        return
    stats["cuts"] += 1
    tasks, a, b = link
    for t in tasks:
        t.cancel()
    for w in (a, b):
        w.transport.abort()  # RST: the bytes in flight are lost


async def report():
    while True:
        if args.stats_file:
            with open(args.stats_file + ".tmp", "w") as f:
                json.dump(stats, f)
            os.replace(args.stats_file + ".tmp", args.stats_file)
        await asyncio.sleep(0.5)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    await asyncio.gather(server.serve_forever(), report())


asyncio.run(main())
