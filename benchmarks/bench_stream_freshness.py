"""Freshness through Redis: trainer update -> visible at 3 replica processes that follow the
trainer's delta announcements on Redis, and, in the same run, at 3 replica processes that poll
the trainer's directory (the `Replica` default, every 0.02 s).

Processes: a private redis-server (persistence off); the trainer (a `Consumer` with a
`RedisAnnouncer`: what `rtrec consume` runs; a delta every --interval s) on a model of
--users x --items (dim 64, BPR, AdaGrad); 6 replicas; this process, the producer.

Every ~50 ms (jittered) the producer XADDs one probe event whose item is brand new, plus
--background events/s of other traffic. A replica sees the probe when its model knows the item
(the delta holding the new row arrived). Per probe and replica:
  update -> visible  t_seen - t_update, t_update = when the trainer finished learning the batch
                     that held the probe (the trainer records when each batch ends and its last
                     entry ID);
  XADD -> visible    t_seen - t_xadd (adds the trainer's read and learn).
All clocks are time.monotonic() (CLOCK_MONOTONIC, one clock for the machine).

    python benchmarks/bench_stream_freshness.py          # 200 probes (~1 min)
    python benchmarks/bench_stream_freshness.py --quick  # 40 probes, smaller model
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import time
import traceback

import numpy as np

import _common as C
from _redis_server import start_bench

STREAM = "rtrec:events"
PROBE_BASE = 10**12


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--period", type=float, default=0.05, help="mean seconds between probes")
    p.add_argument("--interval", type=float, default=0.1, help="trainer: seconds between deltas")
    p.add_argument("--replicas", type=int, default=3, help="replicas of each kind")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--background", type=float, default=1000.0, help="other events per second")
    p.add_argument("--check", type=float, default=0.001, help="replica-side check period (resolution)")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.users, args.items = 40, 20_000, 5_000
    return args


def trainer_main(args, url, directory, ready, stop, out):
    try:
        import rtrec_native as rt
        from rtrec_native.stream import Consumer, RedisAnnouncer, RedisStreamSource

        rng = np.random.default_rng(0)
        rec = rt.Recommender(model="mf", dim=64, loss="bpr", optimizer="adagrad", num_threads=1, seed=0)
        users = np.arange(args.users, dtype=np.int64)
        items = rng.integers(0, args.items, size=args.users)
        items[: args.items] = np.arange(args.items)
        rec.fit(users, items, epochs=1)
        consumer = Consumer(rec, RedisStreamSource(url, STREAM, "trainers"), directory, interval=args.interval,
                            announce=RedisAnnouncer(url, STREAM + ":deltas"))
        batches = []
        consumer.on_batch = lambda n, seconds: batches.append((time.monotonic(), consumer.state.entry))
        ready.set()
        consumer.run(stop)
        out.put({"ok": True, "batches": batches, "deltas": consumer.publisher.deltas_written,
                 "learned": consumer.learned})
    except BaseException:
        ready.set()
        out.put({"ok": False, "error": traceback.format_exc()})


def replica_main(args, kind, url, directory, probes, ready, out):
    try:
        import rtrec_native as rt

        rep = (rt.Replica(directory, redis=url, deltas_stream=STREAM + ":deltas", num_threads=1, timeout=120)
               if kind == "redis" else rt.Replica(directory, num_threads=1, timeout=120))
        ready.set()
        pending, seen, done = {}, {}, False
        while not done or pending:
            while probes.poll(0):
                msg = probes.recv()
                if msg is None:
                    done = True
                else:
                    pending[msg[0]] = msg
            now = time.monotonic()
            for k, (_, item, t_xadd) in list(pending.items()):
                try:
                    rep.model.item_vectors([item])
                except KeyError:
                    if now - t_xadd > args.timeout:
                        seen[k] = float("nan")
                        del pending[k]
                    continue
                seen[k] = now
                del pending[k]
            time.sleep(args.check)
        stats = rep.stats()
        rep.close()
        out.put({"ok": True, "kind": kind, "seen": seen, "deltas_applied": stats["deltas_applied"],
                 "snapshots_loaded": stats["snapshots_loaded"]})
    except BaseException:
        ready.set()
        out.put({"ok": False, "kind": kind, "error": traceback.format_exc()})


class FamilyNoiseMeter(C.NoiseMeter):
    """C.NoiseMeter that counts the benchmark's own processes (trainer, replicas, redis-server)
    as ours, not as noise: their CPU time is read from /proc at start and stop."""

    def __init__(self, pids):
        self.pids = pids

    def _self_ticks(self):
        total = super()._self_ticks()
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
            except OSError:
                pass
        return total


def stats_ms(values):
    v = np.asarray([x for x in values if x == x]) * 1e3
    if not len(v):
        return "—"
    return {"p50": np.percentile(v, 50), "p90": np.percentile(v, 90), "p99": np.percentile(v, 99), "max": v.max()}


def main(argv=None):
    args = parse_args(argv)
    rt, server, scratch = start_bench(args, "rtrec-bench-sfresh-")
    if rt is None:
        return 1
    from rtrec_native.stream import Producer
    from rtrec_native.stream._redis import stream_ids
    directory = f"{scratch}/model"
    print(f"redis-server {server.version}; trainer: Consumer + RedisAnnouncer, delta every {args.interval} s, model "
          f"{args.users:,} users x {args.items:,} items dim 64; {args.replicas} Redis-following and {args.replicas} "
          f"directory-polling replicas; {args.samples} probes every ~{args.period * 1e3:.0f} ms; background "
          f"{args.background:.0f} events/s\n", flush=True)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop, trainer_ready = ctx.Event(), ctx.Event()
    producer = Producer(server.url, STREAM)
    producer.send(0, 0)  # the stream exists before anyone reads it
    trainer = ctx.Process(target=trainer_main, args=(args, server.url, directory, trainer_ready, stop, out))
    trainer.start()
    trainer_ready.wait(300)
    replicas, pipes = [], []
    for kind in ("redis", "directory"):
        for _ in range(args.replicas):
            rx, tx = ctx.Pipe(duplex=False)
            ready = ctx.Event()
            proc = ctx.Process(target=replica_main, args=(args, kind, server.url, directory, rx, ready, out))
            proc.start()
            replicas.append((proc, ready))
            pipes.append(tx)
    for _proc, ready in replicas:
        ready.wait(300)
    time.sleep(1.0)
    rng = np.random.default_rng(1)
    meter = FamilyNoiseMeter([trainer.pid, server.proc.pid] + [p.pid for p, _ in replicas]).start()
    probes = {}
    next_t = time.monotonic()
    per_tick = round(args.background * args.period)
    for k in range(args.samples):
        next_t += args.period * rng.uniform(0.5, 1.5)
        if per_tick:
            producer.send_fields([{"user": str(u), "item": str(i)} for u, i in
                                  zip(rng.integers(args.samples, args.users, per_tick).tolist(),
                                      rng.integers(0, args.items, per_tick).tolist(), strict=True)])
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        item = PROBE_BASE + k
        entry = producer.send(k, item)
        t_xadd = time.monotonic()
        probes[k] = (entry, t_xadd)
        for pipe in pipes:
            pipe.send((k, item, t_xadd))
    for pipe in pipes:
        pipe.send(None)
    results = [out.get(timeout=args.timeout + 120) for _ in replicas]
    noise = meter.stop()  # before the replicas exit (their CPU time leaves /proc with them)
    stop.set()
    trained = out.get(timeout=120)
    for proc in [trainer] + [p for p, _ in replicas]:
        proc.join(30)
    bad = [r for r in [*results, trained] if not r["ok"]]
    if bad:
        print("\n".join(r["error"] for r in bad))
        return 1
    batches = trained["batches"]
    ends = [stream_ids(entry) for _, entry in batches]
    t_update = {}
    for k, (entry, _) in probes.items():
        at = next(j for j, end in enumerate(ends) if end >= stream_ids(entry))
        t_update[k] = batches[at][0]
    rows = {}
    for kind in ("redis", "directory"):
        lags_u, lags_x, timeouts = [], [], 0
        for r in results:
            if r["kind"] != kind:
                continue
            for k, t_seen in r["seen"].items():
                timeouts += t_seen != t_seen
                lags_u.append(t_seen - t_update[k])
                lags_x.append(t_seen - probes[k][1])
        rows[kind] = {"update->visible": stats_ms(lags_u), "XADD->visible": stats_ms(lags_x),
                      "n": len(lags_u), "timeouts": timeouts}
    print("| replicas (3 processes each) | measured from | p50 | p90 | p99 | max | probes seen | timeouts |")
    print("|---|---|---|---|---|---|---|---|")
    names = {"redis": "follow Redis announcements", "directory": "poll the directory (every 0.02 s)"}
    for kind, row in rows.items():
        for frm in ("update->visible", "XADD->visible"):
            s = row[frm]
            print(f"| {names[kind]} | trainer {frm.replace('->', ' → ')} | {s['p50']:.0f} ms | {s['p90']:.0f} ms | "
                  f"{s['p99']:.0f} ms | {s['max']:.0f} ms | {row['n'] - row['timeouts']} | {row['timeouts']} |")
    print(f"\ntrainer: {trained['learned']:,} events learned, {trained['deltas']} deltas; {C.report_noise(noise)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "noise": noise, "args": vars(args)}, fh, indent=2, default=float)
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
