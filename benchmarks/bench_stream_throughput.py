"""Trainer throughput from Redis Streams, against what feeds it and what it costs.

Same run, same events (seeded Zipf data from _common.make_events, BPR, dim 32, AdaGrad, one
thread, seed 0), a private redis-server on loopback (persistence off):

  1. raw XADD: 2 producer processes write N/2 events each (pipelined, 1000 per round trip,
     fields prepared beforehand): N / wall time from the common start to the last reply.
  2. the trainer: `Consumer` (what `rtrec consume` runs) drains the N entries through a consumer
     group: read, parse, learn (update_one per event), a durable delta every 0.1 s (and, a
     second time with a fresh group and model, every 1 s), XACK after each delta.
  3. in-process: the same events in stream order learned by `update(batch of 1000)`, and by
     an `update_one` loop (the consumer's per-event call, without Redis and parsing).

Ratios: trainer / raw XADD (can the trainer keep up with 2 producers?) and trainer /
update(batch) (the Redis path's overhead).

    python benchmarks/bench_stream_throughput.py           # 300k events (~1.5 min)
    python benchmarks/bench_stream_throughput.py --quick   # 30k events
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time

import numpy as np

import _common as C
from _redis_server import RedisServer

STREAM = "bench:events"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="30k events")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.users, args.items = 30_000, 10_000, 2_000
    return args


def producer_main(url, users, items, barrier, out):
    from rtrec_native.stream import Producer

    producer = Producer(url, STREAM)
    entries = [{"user": str(u), "item": str(i)} for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    barrier.wait()
    began = time.monotonic()
    producer.send_fields(entries, chunk=1000)
    out.put((began, time.monotonic()))


def model(rt, args):
    return rt.Recommender(loss="bpr", dim=args.dim, optimizer="adagrad", num_threads=1, seed=0)


def consume(rt, args, url, group, interval):
    from rtrec_native.stream import Consumer, RedisStreamSource

    directory = tempfile.mkdtemp(prefix="rtrec-bench-tput-", dir=args.tmpdir)
    try:
        consumer = Consumer(model(rt, args), RedisStreamSource(url, STREAM, group), directory, interval=interval)
        began = time.perf_counter()
        consumer.run(max_entries=args.events)
        seconds = time.perf_counter() - began
        assert consumer.learned == args.events, consumer.stats()
        return args.events / seconds, consumer.publisher.deltas_written
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None):
    args = parse_args(argv)
    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    import redis

    from rtrec_native.stream import EntryParser

    C.print_env(C.env_report(["rtrec_native", "redis", "hiredis"]))
    C.wait_quiet(args.wait_quiet)
    scratch = tempfile.mkdtemp(prefix="rtrec-bench-redis-", dir=args.tmpdir)
    server = RedisServer(scratch)
    print(f"redis-server {server.version} on {server.url} (persistence off); {args.events:,} events, "
          f"{args.users:,} users x {args.items:,} items, BPR dim {args.dim} AdaGrad, one thread\n", flush=True)
    ev = C.make_events(args.users, args.items, args.events, seed=0, dedupe=False)
    meter = C.NoiseMeter().start()
    rows = {}

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    half = args.events // 2
    parts = [(ev.users[:half], ev.items[:half]), (ev.users[half:], ev.items[half:])]
    procs = [ctx.Process(target=producer_main, args=(server.url, u, i, barrier, out)) for u, i in parts]
    for proc in procs:
        proc.start()
    barrier.wait()
    spans = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    rows["raw XADD, 2 producers (pipelined, 1000 per round trip)"] = args.events / (
        max(e for _, e in spans) - min(b for b, _ in spans))
    print(f"- XADD done: {rows[next(iter(rows))]:,.0f} events/s", flush=True)

    for interval in (0.1, 1.0):
        rate, deltas = consume(rt, args, server.url, f"bench-{interval}", interval)
        rows[f"trainer: Consumer (rtrec consume), a delta every {interval:g} s"] = rate
        print(f"- consumer, delta every {interval:g} s: {rate:,.0f} events/s ({deltas} deltas)", flush=True)

    # The same events in stream order (the producers interleaved), parsed as the trainer does.
    rec = model(rt, args)
    parser = EntryParser("bpr", user_kind=lambda: rec.user_id_kind, item_kind=lambda: rec.item_id_kind)
    parsed = [parser.parse(k.decode(), f) for k, f in redis.Redis.from_url(server.url).xrange(STREAM)]
    users = np.array([p[0] for p in parsed], dtype=np.int64)
    items = np.array([p[1] for p in parsed], dtype=np.int64)
    stamps = np.array([p[4] for p in parsed])
    began = time.perf_counter()
    for start in range(0, len(users), 1000):
        rec.update(users[start:start + 1000], items[start:start + 1000], timestamps=stamps[start:start + 1000])
    rows["in-process update(batch of 1000)"] = len(users) / (time.perf_counter() - began)
    rec = model(rt, args)
    began = time.perf_counter()
    for event in parsed:
        rec.update_one(*event)
    rows["in-process update_one loop"] = len(users) / (time.perf_counter() - began)
    noise = meter.stop()

    xadd = rows["raw XADD, 2 producers (pipelined, 1000 per round trip)"]
    batch = rows["in-process update(batch of 1000)"]
    print("\n| path | events/s | vs raw XADD | vs update(batch) |\n|---|---|---|---|")
    for name, rate in rows.items():
        print(f"| {name} | {rate:,.0f} | {rate / xadd:.2f}× | {rate / batch:.3f}× |")
    print(f"\n{C.report_noise(noise)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "events": args.events, "noise": noise}, fh, indent=2)
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
