"""Fault run: `rtrec consume` killed with SIGKILL at random moments while 2 producers write 1M
events with malformed entries planted among them; restarted after every kill.

Checks, from the model's own files and from Redis:
  - events learned == good events produced (the consumer's counters travel inside every
    snapshot/delta with the rows, so they count what the model holds, never an event twice);
  - dead letters == the malformed entries planted (the dead-letter stream holds exactly their
    IDs, each once, even though entries read before a kill are read again after it);
  - nothing pending in the consumer group at the end;
  - bit for bit: the killed-and-restarted model equals a model that learned the same stream
    uninterrupted (one thread, seed 0), vectors, biases and counters (the gradient-step
    count included: an event learned twice would add steps).

    python benchmarks/bench_stream_faults.py               # 1M events, 5 kills (~3 min)
    python benchmarks/bench_stream_faults.py --quick       # 100k events, 5 kills
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

import _common as C
from _redis_server import start_bench

STREAM = "rtrec:events"
MODEL = ["--family", "mf", "--loss", "bpr", "--dim", "32", "--optimizer", "adagrad", "--threads", "1",
         "--seed", "0"]
MALFORMED = [{"user": "not-an-int", "item": "1"}, {"user": "1"}, {"user": "1", "item": "2", "label": "x"},
             {"user": "1", "item": "2", "weight": "-3"}, {"user": "1", "item": "2", "colour": "red"}]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="good events, from 2 producers")
    p.add_argument("--malformed", type=int, default=1000, help="malformed entries planted among them")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0, help="seeds the data and the kill times")
    p.add_argument("--no-reference", action="store_true", help="skip the uninterrupted run (no bit-for-bit check)")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="100k events, 100 malformed")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.malformed, args.users, args.items = 100_000, 100, 20_000, 5_000
    return args


def producer_main(url, users, items, n_bad, seed, out):
    from rtrec_native.stream import Producer

    rng = np.random.default_rng(seed)
    entries = [{"user": str(u), "item": str(i)} for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    for k, at in enumerate(sorted(rng.choice(len(entries), size=n_bad, replace=False).tolist(), reverse=True)):
        entries.insert(at, MALFORMED[k % len(MALFORMED)])
    ids = Producer(url, STREAM).send_fields(entries, chunk=1000)
    out.put([entry_id for entry_id, fields in zip(ids, entries, strict=True) if fields in MALFORMED])


def consume(url, directory, log, *extra):
    return subprocess.Popen([sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", url, "--stream", STREAM,
                             "--snapshot-dir", str(directory), "--log-level", "error", *MODEL, *extra],
                            stdout=subprocess.PIPE, stderr=log, text=True)


def counters(directory):
    import rtrec_native as rt

    rec = rt.replication.restore_latest(directory)
    if rec is None or not rec.source_position:
        return 0, 0
    state = json.loads(rec.source_position)
    return state["learned"], state["dead"]


def state_of(rec):
    items, users = rec.item_vectors(), rec.user_vectors()
    stats = {k: v for k, v in rec.stats().items() if k != "memory_bytes"}
    return items[0].tobytes(), items[1].tobytes(), items[2].tobytes(), users[0].tobytes(), users[1].tobytes(), \
        users[2].tobytes(), stats


def main(argv=None):
    args = parse_args(argv)
    rt, server, scratch = start_bench(args, "rtrec-bench-faults-")
    if rt is None:
        return 1
    import redis

    from rtrec_native.stream import Consumer, RedisStreamSource
    r = redis.Redis.from_url(server.url)
    rng = random.Random(args.seed)
    print(f"redis-server {server.version} (persistence off); {args.events:,} events + {args.malformed:,} malformed "
          f"from 2 producers; trainer `rtrec consume {' '.join(MODEL)}` killed {args.kills} times\n", flush=True)
    ev = C.make_events(args.users, args.items, args.events, seed=args.seed, dedupe=False)
    half = args.events // 2
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    producers = [ctx.Process(target=producer_main, args=(server.url, ev.users[s], ev.items[s], n, args.seed + k, out))
                 for k, (s, n) in enumerate([(slice(0, half), args.malformed // 2),
                                             (slice(half, None), args.malformed - args.malformed // 2)])]
    if not args.no_reference:
        # The uninterrupted run's group exists from the start: the trainer trims only entries every
        # group has acknowledged, so the whole stream stays for it.
        r.xgroup_create(STREAM, "reference", id="0", mkstream=True)
    began = time.monotonic()
    for proc in producers:
        proc.start()
    model_dir = scratch / "model"
    log = open(scratch / "consume.log", "w")  # noqa: SIM115 - closed below
    kills = []
    expected = args.events / 30_000  # seconds the trainer needs, roughly: kill times spread over it
    for k in range(args.kills):
        proc = consume(server.url, model_dir, log)
        time.sleep(1.0 + rng.uniform(0.2, 1.5) * expected / args.kills)  # ~1 s to start, then a random moment
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        learned, dead = counters(model_dir)
        kills.append({"at_s": round(time.monotonic() - began, 1), "learned_on_disk": learned, "dead_on_disk": dead,
                      "stream_length": r.xlen(STREAM)})
        print(f"- kill {k + 1} at {kills[-1]['at_s']} s: model on disk holds {learned:,} events, {dead:,} dead "
              f"letters; stream has {kills[-1]['stream_length']:,} entries", flush=True)
    planted = set()
    for _ in producers:
        planted.update(out.get(timeout=600))
    for proc in producers:
        proc.join()
    last = consume(server.url, model_dir, log, "--idle-exit", "2", "--json")
    summary = json.loads(last.communicate(timeout=1800)[0])
    log.close()
    seconds = time.monotonic() - began
    learned, dead = counters(model_dir)
    dead_ids = {entry_id.decode() for entry_id, _ in r.xrange(STREAM + ":dead")}
    pending = r.xpending(STREAM, "trainers")["pending"]
    result = {"events": args.events, "malformed": args.malformed, "kills": kills, "learned": learned, "dead": dead,
              "dead_stream": len(dead_ids), "dead_ids_match": dead_ids == planted, "pending": pending,
              "wall_seconds": seconds, "last_run": summary}
    print(f"\nafter {args.kills} kills and restarts ({seconds:.0f} s): learned {learned:,} of {args.events:,} events, "
          f"dead letters {dead:,} of {args.malformed:,} planted (dead-letter stream: {len(dead_ids):,}, IDs "
          f"{'match' if dead_ids == planted else 'DIFFER'}), pending {pending}", flush=True)

    if not args.no_reference:
        logging.getLogger("rtrec_native.stream").setLevel(logging.ERROR)  # its dead letters were logged once
        reference = Consumer(rt.Recommender(model="mf", loss="bpr", dim=32, optimizer="adagrad", num_threads=1,
                                            seed=0), RedisStreamSource(server.url, STREAM, "reference"),
                             scratch / "reference", interval=1.0)
        t0 = time.monotonic()
        reference.run(idle_exit=1.0)
        resumed = rt.replication.restore_latest(model_dir, num_threads=1)
        result["bit_for_bit"] = state_of(resumed) == state_of(reference.model)
        result["reference_learned"] = reference.learned
        print(f"uninterrupted reference ({time.monotonic() - t0:.0f} s): learned {reference.learned:,}; the killed "
              f"run's model is {'bit-for-bit equal' if result['bit_for_bit'] else 'DIFFERENT'} "
              f"(updates {resumed.stats()['updates']:,} vs {reference.model.stats()['updates']:,})")
    ok = (learned == args.events and dead == args.malformed == len(dead_ids) and dead_ids == planted
          and pending == 0 and result.get("bit_for_bit", True))
    print(f"\n{'PASS' if ok else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
