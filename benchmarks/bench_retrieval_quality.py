"""Quality of similar items and anonymous sessions on the MovieLens test-then-train replay.

MovieLens ml-latest-small (../shared; research use only), events in time order. The first
20% are fitted (5 epochs); every later micro-batch of 10 events is first ranked, then learned
with ``update`` (labels: rating >= 4 is a positive). A trial is a positive (u, i) whose user
has an earlier positive. For each trial, HitRate@10 of:

  known user (real time)   recommend(u)                 (u's seen items excluded)
  anonymous session        recommend_for_history(H)     H = u's earlier positives, last 50,
                                                         oldest first (H excluded); no user row
  similar to previous      similar_items(p)             p = u's previous positive (the
                                                         session-of-one query)
and the same questions answered by an item co-occurrence reference learning in real time
(counts of two items among a user's last 50 positives, cosine-normalised, as in
benchmarks/_baselines.py): co-occurrence given H, and given p. On every 5th trial, the
alternatives measured before choosing the core's rules: similar items by the cosine of item
vectors, or by inner product + item bias; for mf, the anonymous query as the mean of H's
item vectors instead of sum / sqrt(|H|).

    python benchmarks/bench_retrieval_quality.py            # both families
    python benchmarks/bench_retrieval_quality.py --quick    # first 30% of the replay
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import _common as C

MOVIELENS = C.find_dataset("ml-latest-small") / "ratings.csv"
HISTORY = 50


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS)
    p.add_argument("--families", nargs="+", default=["two_tower", "mf"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="the first 30%% of the replay only")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


class Cooccurrence:
    """Item co-occurrence among each user's last HISTORY positives, learned event by event."""

    def __init__(self, n_items: int) -> None:
        self.counts = np.zeros(n_items, dtype=np.float32)
        self.cooc = np.zeros((n_items, n_items), dtype=np.float32)
        self.recent: dict[int, list[int]] = defaultdict(list)

    def learn(self, user: int, item: int) -> None:
        recent = self.recent[user]
        if recent:
            self.cooc[item, recent] += 1.0
            self.cooc[recent, item] += 1.0
        self.counts[item] += 1.0
        recent.append(item)
        del recent[:-HISTORY]

    def top(self, history: list[int], exclude: list[int], k: int = 10) -> np.ndarray:
        counts = np.maximum(self.counts, 1.0)
        scores = (self.cooc[history] / np.sqrt(counts[history])[:, None]).sum(axis=0) / np.sqrt(counts)
        scores += 1e-6 * counts / counts.max()  # popularity breaks ties
        scores[exclude] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        return top


def replay(rt, family: str, data, args) -> dict[str, tuple[int, int]]:
    users, items, ratings = data
    n = len(users)
    warm = int(0.2 * n)
    end = int(0.3 * n) if args.quick else n
    n_items = int(items.max()) + 1
    labels = (ratings >= 4.0).astype(np.float32)
    rec = rt.Recommender(model=family, seed=args.seed)
    rec.fit(users[:warm], items[:warm], labels[:warm], epochs=args.epochs)
    cooc = Cooccurrence(n_items)
    positives: dict[int, list[int]] = defaultdict(list)
    for u, i, y in zip(users[:warm], items[:warm], labels[:warm], strict=True):
        if y > 0:
            cooc.learn(int(u), int(i))
            positives[int(u)].append(int(i))
    hits: dict[str, list[int]] = defaultdict(list)
    trial = 0
    for start in range(warm, end, 10):
        stop = min(start + 10, end)
        for u, i, y in zip(users[start:stop], items[start:stop], labels[start:stop], strict=True):
            u, i = int(u), int(i)
            history = positives[u][-HISTORY:]
            if y <= 0 or not history:
                continue
            trial += 1
            prev = history[-1]
            hits["known user (real time)"].append(i in rec.recommend(u, k=10)[0])
            hits["anonymous session"].append(i in rec.recommend_for_history(history, k=10)[0])
            hits["co-occurrence given the session"].append(i in cooc.top(history, history))
            try:
                similar = rec.similar_items(prev, k=10)[0]
            except KeyError:  # an item the model evicted: no row (cannot happen here, kept honest)
                similar = []
            hits["similar to previous"].append(i in similar)
            hits["co-occurrence similar to previous"].append(i in cooc.top([prev], [prev]))
            if trial % 5 == 0:
                ids, vectors, biases = rec.item_vectors()
                row = {int(x): r for r, x in enumerate(ids)}
                if prev in row:
                    ip = vectors @ vectors[row[prev]] + biases
                    ip[row[prev]] = -np.inf
                    top = ids[np.argpartition(-ip, 10)[:10]]
                    hits["(every 5th) similar by inner product + bias"].append(i in top)
                    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                    cos = unit @ unit[row[prev]]
                    cos[row[prev]] = -np.inf
                    hits["(every 5th) similar by cosine of item vectors"].append(
                        i in ids[np.argpartition(-cos, 10)[:10]])
                    hits["(every 5th) similar, session of one (same trials)"].append(i in similar)
                if family == "mf":
                    known = [row[h] for h in history if h in row]
                    q = vectors[known].mean(axis=0)
                    s = vectors @ q + biases
                    s[known] = -np.inf
                    top = ids[np.argpartition(-s, 10)[:10]]
                    hits["(every 5th) anonymous by mean of vectors"].append(i in top)
                    hits["(every 5th) anonymous by sum / sqrt(n) (same trials)"].append(
                        i in rec.recommend_for_history(history, k=10)[0])
        rec.update(users[start:stop], items[start:stop], labels[start:stop])
        for u, i, y in zip(users[start:stop], items[start:stop], labels[start:stop], strict=True):
            if y > 0:
                cooc.learn(int(u), int(i))
                positives[int(u)].append(int(i))
    return {name: (int(np.sum(v)), len(v)) for name, v in hits.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, code = C.rtrec_on_data(args.data)
    if rt is None:
        return code
    import pandas as pd

    df = pd.read_csv(args.data).sort_values("timestamp", kind="stable")
    # Dense item numbers (0..n-1) so that the co-occurrence reference is a small square matrix.
    items = np.unique(df.movieId.to_numpy(np.int64), return_inverse=True)[1].astype(np.int64)
    data = (df.userId.to_numpy(np.int64), items, df.rating.to_numpy(np.float64))
    C.print_env(C.env_report())
    out, rows = {}, []
    for family in args.families:
        t0 = time.perf_counter()
        res = replay(rt, family, data, args)
        print(f"  replayed {family} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        out[family] = res
        for name, (hit, n) in res.items():
            rows.append([family, name, f"{hit / max(n, 1):.4f}", f"{n:,}"])
    print(f"\n## MovieLens replay{' (first 30%)' if args.quick else ''}: HitRate@10 per trial")
    C.print_table(["family", "query", "HitRate@10", "trials"], rows)
    if args.json:
        C.dump_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "results": out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
