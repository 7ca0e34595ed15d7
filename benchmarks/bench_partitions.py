"""More than one trainer: does learning on K user partitions, merging the shared rows every T
events, keep the quality of one trainer?

MovieLens ml-latest-small (../shared; research use only) in time order, replayed test-then-
train as the project's prequential evaluation does: positives are ratings >= 4 (label 1, other
ratings label 0), the first 20% of events are the warm-up (one fit, then every trainer starts
from that model), then every micro-batch of 10 events is ranked before it is learned:
HitRate@10 over the catalogue, the user's seen items excluded.

Events are routed by user to one of K trainers (rtrec_native.stream.partition_of, the rule the
producers use). Each trainer learns only its partition's events. Every T events, each trainer
takes the increment of its shared rows since its last merge (Model.shared_increment: items,
item features, the tower, the label sums) and every other trainer adds it (Model.add_shared);
then each trainer's base is its state after the merge. This simulates in one process what the
partitioned trainers do over Redis, with increments applied in the same way (added once each,
in any order).

    python benchmarks/bench_partitions.py                 # both families, K = 1, 2, 4; T = 100, 1000, 10000
    python benchmarks/bench_partitions.py --quick         # two_tower, the first 40,000 events, K = 1, 2; T = 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _common as C

MOVIELENS = C.find_dataset("ml-latest-small") / "ratings.csv"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS)
    p.add_argument("--families", nargs="+", default=["two_tower", "mf"])
    p.add_argument("--partitions", type=int, nargs="+", default=[2, 4])
    p.add_argument("--merge-every", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--events", type=int, default=None, help="replay only the first N events")
    p.add_argument("--batch", type=int, default=10, help="events ranked together before they are learned")
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(families=["two_tower"], partitions=[2], merge_every=[1000], events=40_000)
    return p.parse_args(argv)


def replay(rt, family: str, events, n: int, partitions: int, merge_every: int, batch: int) -> tuple[int, int, float]:
    """Hits, trials and seconds of one replay with `partitions` trainers merging every
    `merge_every` events."""
    from rtrec_native.stream.partitions import partition_of

    users, items = events.users[:n], events.items[:n]
    labels = (events.labels[:n] >= 4.0).astype(np.float32)
    stamps = events.timestamps[:n]
    warm = int(0.2 * n)
    start = rt.Recommender(model=family, seed=0, num_threads=1)
    start.fit(users[:warm], items[:warm], labels[:warm], timestamps=stamps[:warm], epochs=5)
    with tempfile.TemporaryDirectory() as tmp:
        start.save(Path(tmp) / "warm")
        trainers = [rt.Recommender.load(Path(tmp) / "warm", num_threads=1) for _ in range(partitions)]
    bases = [t._model.shared_rows() for t in trainers]
    route = partition_of(users, partitions)
    hits = trials = 0
    since_merge = 0
    began = time.perf_counter()
    for lo in range(warm, n, batch):
        hi = min(lo + batch, n)
        for j in range(lo, hi):  # test: rank before learning
            if labels[j] > 0:
                trials += 1
                top = trainers[route[j]].recommend(int(users[j]), k=10)[0]
                hits += int(items[j]) in top
        for j in range(lo, hi):  # then train, each event by its user's trainer
            trainers[route[j]].update_one(int(users[j]), int(items[j]), float(labels[j]), 1.0, float(stamps[j]))
        since_merge += hi - lo
        if partitions > 1 and since_merge >= merge_every:
            since_merge = 0
            increments = [t._model.shared_increment(b) for t, b in zip(trainers, bases, strict=True)]
            for k, t in enumerate(trainers):
                for other, inc in enumerate(increments):
                    if other != k:
                        t._model.add_shared(inc)
            bases = [t._model.shared_rows() for t in trainers]
    return hits, trials, time.perf_counter() - began


def _load(path: Path):
    from rtrec_native.data import load_events

    return load_events(path)[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, code = C.rtrec_on_data(args.data)
    if rt is None:
        return code
    events = _load(args.data)
    n = min(args.events or len(events.users), len(events.users))
    C.print_env(C.env_report())
    print(f"\n{n:,} events, warm-up {int(0.2 * n):,}, micro-batches of {args.batch}; HitRate@10 of positives")
    print("| family | trainers | merge every | HitRate@10 | vs 1 trainer | trials | replay s |")
    print("|---|---|---|---|---|---|---|")
    for family in args.families:
        h1, t1, s1 = replay(rt, family, events, n, 1, 0, args.batch)
        one = h1 / t1
        print(f"| {family} | 1 | — | {one:.4f} | 1.000 | {t1:,} | {s1:.0f} |", flush=True)
        for k in args.partitions:
            for every in args.merge_every:
                h, t, s = replay(rt, family, events, n, k, every, args.batch)
                print(f"| {family} | {k} | {every:,} | {h / t:.4f} | {h / t / one:.3f} | {t:,} | {s:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
