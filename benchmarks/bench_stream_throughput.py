"""Trainer throughput from Redis Streams, against the transport's ceiling and the engine's rate.

Same run, same events (seeded Zipf data from _common.make_events), one thread, seed 0, a
private redis-server on loopback (persistence off), medians over --repeats interleaved runs:

  transport ceiling (single-event entries, COUNT --batch per read, XACK per read):
    - bare loop: redis-py's XREADGROUP + XACK, nothing parsed (the issue's baseline)
    - bare raw loop: the same client with the trainer's own transport (replies as Redis sends
      them, XACK packed by hiredis), nothing parsed
  the trainer: `Consumer` (what `rtrec consume` runs: bulk parse, one `update` per read, a
    durable delta every 0.1 s, its default, XACK after it, trimming on; and again with a delta
    every 1 s, to show what the deltas cost) over
    - the single-event entries (batch --batch entries)
    - the same events packed --pack per entry (`Producer(pack=N)`), --packed-batch entries
      per read (so each `update` learns pack x packed-batch events)
  in-process `update` of the same events in batches of pack x packed-batch (the same model
  settings, timestamps and batch size as the trainer's packed rows)

Families: mf (BPR, dim 32, AdaGrad) and two_tower (its defaults). Then one instrumented run of
each mf trainer row says where the time goes (read = Redis round trip + reply decoding, parse
= field checks + ID conversion, learn = update, delta = save_delta + fsync + announce-less,
ack = XACK, rest = the loop).

    python benchmarks/bench_stream_throughput.py           # 300k events (~2 min)
    python benchmarks/bench_stream_throughput.py --quick   # 30k events
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time

import numpy as np

import _common as C
from _redis_server import RedisServer

SINGLE, PACKED = "bench:single", "bench:packed"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1000, help="entries per read (single-event entries)")
    p.add_argument("--pack", type=int, default=1000, help="events per packed entry")
    p.add_argument("--packed-batch", type=int, default=10,
                   help="packed entries per read: each update learns pack x packed-batch events")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--families", default="mf,two_tower")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="30k events, 1 repeat")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.users, args.items, args.repeats = 30_000, 10_000, 2_000, 1
    return args


def model(rt, family):
    if family == "mf":
        return rt.Recommender(model="mf", loss="bpr", dim=32, optimizer="adagrad", num_threads=1, seed=0)
    return rt.Recommender(model="two_tower", num_threads=1, seed=0)


def bare_loop(client, group, batch):
    """redis-py's XREADGROUP + XACK over the single-event entries: entries/s."""
    n, began = 0, time.perf_counter()
    while True:
        reply = client.xreadgroup(group, "bare", {SINGLE: ">"}, count=batch)
        if not reply:
            break
        ids = [entry_id for entry_id, _ in reply[0][1]]
        client.xack(SINGLE, group, *ids)
        n += len(ids)
    return n / (time.perf_counter() - began)


def bare_raw_loop(url, group, batch):
    """The trainer's transport (RedisStreamSource.read and its XACK), nothing parsed."""
    from rtrec_native.stream import RedisStreamSource

    source = RedisStreamSource(url, SINGLE, group)
    source.open(None)
    n, began = 0, time.perf_counter()
    while True:
        entries = source.read(batch, 0.001)
        if not entries:
            break
        source.commit(entries[-1][0].decode())
        n += len(entries)
    seconds = time.perf_counter() - began
    source.close()
    return n / seconds


def consume(rt, args, url, stream, group, family, batch, phases=None, interval=0.1):
    """Consumer (what `rtrec consume` runs) from the group's start to the end: events/s."""
    from rtrec_native.stream import Consumer, RedisStreamSource

    directory = tempfile.mkdtemp(prefix="rtrec-bench-tput-", dir=args.tmpdir)
    try:
        rec = model(rt, family)
        source = RedisStreamSource(url, stream, group)
        consumer = Consumer(rec, source, directory, interval=interval, batch_size=batch, trim=True)
        if phases is not None:
            _instrument(consumer, phases)
        entries = args.events if stream == SINGLE else -(-args.events // args.pack)
        began = time.perf_counter()
        consumer.run(max_entries=entries)
        seconds = time.perf_counter() - began
        assert consumer.learned == args.events, consumer.stats()
        if phases is not None:
            phases["total"] = seconds
        return args.events / seconds
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _instrument(consumer, phases):
    def timed(obj, name, key):
        inner = getattr(obj, name)

        def wrapper(*a, **k):
            began = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                phases[key] = phases.get(key, 0.0) + time.perf_counter() - began
        setattr(obj, name, wrapper)

    timed(consumer.source, "read", "read")
    timed(consumer._bulk, "parse", "parse")
    timed(consumer._bulk, "entry", "parse")
    timed(consumer.model, "update", "learn")
    timed(consumer.publisher, "flush", "delta")
    timed(consumer.source, "commit", "ack")
    timed(consumer.source, "trim", "trim")


def in_process(rt, family, users, items, stamps, batch):
    rec = model(rt, family)
    began = time.perf_counter()
    for start in range(0, len(users), batch):
        end = start + batch
        rec.update(users[start:end], items[start:end], timestamps=stamps[start:end])
    return len(users) / (time.perf_counter() - began)


def main(argv=None):
    args = parse_args(argv)
    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    import redis

    from rtrec_native.stream import Producer

    C.print_env(C.env_report(["rtrec_native", "redis", "hiredis"]))
    C.wait_quiet(args.wait_quiet)
    families = args.families.split(",")
    scratch = tempfile.mkdtemp(prefix="rtrec-bench-redis-", dir=args.tmpdir)
    server = RedisServer(scratch)
    print(f"redis-server {server.version} on {server.url} (persistence off); {args.events:,} events, "
          f"{args.users:,} users x {args.items:,} items; read batch {args.batch}, pack {args.pack} x "
          f"{args.packed_batch} per read; one thread; "
          f"median of {args.repeats}\n", flush=True)
    ev = C.make_events(args.users, args.items, args.events, seed=0, dedupe=False)
    users, items = ev.users.astype(np.int64), ev.items.astype(np.int64)
    client = redis.Redis.from_url(server.url)

    began = time.perf_counter()
    Producer(server.url, SINGLE).send_fields([{"user": str(u), "item": str(i)}
                                              for u, i in zip(users.tolist(), items.tolist(), strict=True)])
    xadd_single = args.events / (time.perf_counter() - began)
    began = time.perf_counter()
    Producer(server.url, PACKED, pack=args.pack).send_many(users, items)
    xadd_packed = args.events / (time.perf_counter() - began)
    # Every event's time as the trainer reads it: its packed entry's time (the in-process rows use the same).
    packed_ids = [entry_id for entry_id, _ in client.xrange(PACKED)]
    packed_stamps = np.repeat([int(i.split(b"-")[0]) / 1000.0 for i in packed_ids], args.pack)[:args.events]
    print(f"- written: single-event entries {xadd_single:,.0f} events/s (1 producer, 1000 XADD per round trip); "
          f"packed {xadd_packed:,.0f} events/s", flush=True)

    groups = [f"{kind}-{rep}" for rep in range(args.repeats) for kind in ("bare", "raw", "mf-single", "mf-single-1s",
                                                                           "mf-packed", "two_tower-packed",
                                                                           "two_tower-packed-1s")]
    groups += ["profile-mf-single", "profile-mf-packed", "profile-two_tower-packed"]
    for group in groups:  # all at the start: trimming keeps what any of them has not read
        client.xgroup_create(SINGLE if "single" in group or group.startswith(("bare", "raw")) else PACKED, group,
                             id="0")

    meter = C.NoiseMeter().start()
    runs: dict[str, list[float]] = {}

    def record(name, rate):
        runs.setdefault(name, []).append(rate)
        print(f"  {name}: {rate:,.0f}/s", flush=True)

    per_update = args.pack * args.packed_batch
    for rep in range(args.repeats):
        print(f"- run {rep + 1}", flush=True)
        record("bare", bare_loop(client, f"bare-{rep}", args.batch))
        record("raw", bare_raw_loop(server.url, f"raw-{rep}", args.batch))
        record("mf-single", consume(rt, args, server.url, SINGLE, f"mf-single-{rep}", "mf", args.batch))
        record("mf-single-1s", consume(rt, args, server.url, SINGLE, f"mf-single-1s-{rep}", "mf", args.batch,
                                       interval=1.0))
        record("mf-inproc", in_process(rt, "mf", users, items, packed_stamps, per_update))
        record("mf-packed", consume(rt, args, server.url, PACKED, f"mf-packed-{rep}", "mf", args.packed_batch))
        if "two_tower" in families:
            record("two_tower-inproc", in_process(rt, "two_tower", users, items, packed_stamps, per_update))
            record("two_tower-packed", consume(rt, args, server.url, PACKED, f"two_tower-packed-{rep}", "two_tower",
                                               args.packed_batch))
            record("two_tower-packed-1s", consume(rt, args, server.url, PACKED, f"two_tower-packed-1s-{rep}",
                                                  "two_tower", args.packed_batch, interval=1.0))
    noise = meter.stop()

    profiles = {}
    for name, stream, family in (("mf-single", SINGLE, "mf"), ("mf-packed", PACKED, "mf"),
                                 ("two_tower-packed", PACKED, "two_tower")):
        if family not in families:
            continue
        group = f"profile-{name}"
        phases: dict[str, float] = {}
        consume(rt, args, server.url, stream, group, family, args.batch if stream == SINGLE else args.packed_batch,
                phases)
        profiles[name] = phases

    med = {name: C.median(rates) for name, rates in runs.items()}

    def ratio(a: str, b: str) -> float:
        """The median of the runs' own ratios (each run's rows ran back to back: the machine's
        load moves both)."""
        return C.median([x / y for x, y in zip(runs[a], runs[b], strict=True)])

    print("\n| path | events/s (median) | ratio (median of the runs' ratios) | target |\n|---|---|---|---|")
    print(f"| bare loop: redis-py XREADGROUP + XACK, single-event entries, nothing parsed | {med['bare']:,.0f} | 1.00× "
          "| |")
    print(f"| bare loop, the trainer's transport (raw replies, hiredis-packed XACK) | {med['raw']:,.0f} | "
          f"{ratio('raw', 'bare'):.2f}× bare | |")
    print(f"| **mf trainer, single-event entries** | **{med['mf-single']:,.0f}** | "
          f"**{ratio('mf-single', 'bare'):.2f}× bare** ({ratio('mf-single', 'raw'):.2f}× raw) | ≥ 0.8× bare |")
    print(f"| mf trainer, single-event entries, a delta every 1 s | {med['mf-single-1s']:,.0f} | "
          f"{ratio('mf-single-1s', 'bare'):.2f}× bare | |")
    print(f"| mf in-process `update` (batch of {per_update}) | {med['mf-inproc']:,.0f} | 1.00× | |")
    print(f"| **mf trainer, packed entries ({args.pack} events each, {args.packed_batch} per read)** | "
          f"**{med['mf-packed']:,.0f}** | "
          f"**{ratio('mf-packed', 'mf-inproc'):.2f}× in-process** | ≥ 0.4× |")
    if "two_tower-inproc" in med:
        print(f"| two_tower in-process `update` (batch of {per_update}) | {med['two_tower-inproc']:,.0f} | 1.00× | |")
        print(f"| **two_tower trainer, packed entries** | **{med['two_tower-packed']:,.0f}** | "
              f"**{ratio('two_tower-packed', 'two_tower-inproc'):.2f}× in-process** | ≥ 0.7× |")
        print(f"| two_tower trainer, packed entries, a delta every 1 s | {med['two_tower-packed-1s']:,.0f} | "
              f"{ratio('two_tower-packed-1s', 'two_tower-inproc'):.2f}× in-process | |")
    print("\nWhere a trainer's time goes (one instrumented run, µs per event):\n")
    print("| trainer | read | parse | learn | delta | ack | trim | rest | total |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, phases in profiles.items():
        total = phases.pop("total")
        rest = total - sum(phases.values())
        cells = [phases.get(k, 0.0) for k in ("read", "parse", "learn", "delta", "ack", "trim")] + [rest, total]
        print(f"| {name} | " + " | ".join(f"{1e6 * c / args.events:.2f}" for c in cells) + " |")
        phases["total"] = total
    print("\nall runs:", {k: [round(v) for v in vs] for k, vs in runs.items()})
    print(f"\n{C.report_noise(noise)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": runs, "median": med, "profiles": profiles, "events": args.events,
                       "xadd": {"single": xadd_single, "packed": xadd_packed}, "noise": noise}, fh, indent=2)
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
