"""More than one trainer: learned events per second through Redis with K = 1, 2 and 4 trainers
of one thread each, and the bytes each one holds.

A private redis-server on loopback; the same seeded events (Zipf items, uniform users, event
times given) are written with `Producer(partitions=K)` before the trainers start; then K
`rtrec consume --partitions K --partition P` processes (1 thread each, mf, dim 32, their
default 0.1 s deltas, each with its shared-row exchange) run until the stream is idle. The rate
of a run is all events over the wall time from the start of the first trainer to the end of
the last one's learning (its last entry), so it includes the exchange. Medians over --repeats
runs, K = 1 measured in the same run. Memory: each trainer's `stats()["memory_bytes"]` and
users after its run, against the single trainer's.

    python benchmarks/bench_partition_throughput.py           # 400k events
    python benchmarks/bench_partition_throughput.py --quick   # 60k events
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _redis_server import start_bench


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--wait-quiet", type=float, default=0.0, help="seconds to wait for a quiet machine")
    p.add_argument("--tmpdir", default=None)
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(events=60_000, users=20_000, items=5_000, repeats=1)
    return p.parse_args(argv)


def run(rt, url: str, scratch: Path, k: int, users: np.ndarray, items: np.ndarray, tag: str) -> dict:
    import redis

    from rtrec_native.replication import restore_latest
    from rtrec_native.stream import Producer

    client = redis.Redis.from_url(url)
    client.flushall()
    stream = f"ev{tag}"
    producer = Producer(url, stream, partitions=k if k > 1 else None)
    for start in range(0, len(users), 50_000):
        end = min(start + 50_000, len(users))
        producer.send_many(users[start:end].tolist(), items[start:end].tolist(),
                           timestamps=(1e6 + np.arange(start, end)).tolist())
    producer.close()
    directory = scratch / f"model{tag}"
    began = time.perf_counter()
    procs = []
    for p in range(k):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", url, "--stream", stream,
             "--partitions", str(k), *(["--partition", str(p)] if k > 1 else []), "--snapshot-dir", str(directory),
             "--family", "mf", "--dim", "32", "--threads", "1", "--idle-exit", "1.0", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a trainer failed ({proc.returncode})")
        reports.append(json.loads(out))
    wall = time.perf_counter() - began - 1.0  # each trainer waited --idle-exit after its last entry
    client.close()
    dirs = [directory] if k == 1 else [directory / f"partition-{p}" for p in range(k)]
    models = [restore_latest(d, num_threads=1) for d in dirs]
    learned = sum(r["learned"] for r in reports)
    return {"rate": learned / wall, "learned": learned,
            "per_trainer": [r["learned"] / wall for r in reports],
            "memory": [m.stats()["memory_bytes"] for m in models], "users": [m.n_users for m in models]}


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, server, scratch = start_bench(args, "rtrec-partitions-")
    if rt is None:
        return 1
    rng = np.random.default_rng(0)
    users = rng.integers(0, args.users, args.events)
    items = np.minimum(rng.zipf(1.2, args.events) - 1, args.items - 1)
    results: dict[int, list[dict]] = {k: [] for k in args.partitions}
    for r in range(args.repeats):
        for k in (args.partitions if r % 2 == 0 else list(reversed(args.partitions))):
            results[k].append(run(rt, server.url, scratch, k, users, items, f"{k}-{r}"))
    base = statistics.median(x["rate"] for x in results[min(args.partitions)])
    one_memory = results[min(args.partitions)][0]["memory"][0]
    print(f"\n{args.events:,} events, {args.users:,} users, {args.items:,} items; mf dim 32, 1 thread per trainer; "
          f"medians of {args.repeats}")
    print("| trainers | events/s learned (all) | vs 1 trainer | per trainer | memory per trainer | users per trainer |")
    print("|---|---|---|---|---|---|")
    for k in args.partitions:
        rate = statistics.median(x["rate"] for x in results[k])
        per = statistics.median(statistics.mean(x["per_trainer"]) for x in results[k])
        memory = statistics.median(statistics.mean(x["memory"]) for x in results[k])
        users_per = statistics.mean(results[k][0]["users"])
        print(f"| {k} | {rate:,.0f} | {rate / base:.2f}x | {per:,.0f} | {memory / 2**20:.1f} MiB "
              f"({memory / one_memory:.2f}x) | {users_per:,.0f} |", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
