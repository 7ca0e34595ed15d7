"""Admission (min_count): rows and memory saved on a long-tailed stream, and what it costs
in quality, for N = 1 (no filter), 2 and 5.

Stream: user activity Zipf(1.05) over 20M possible IDs (so most users appear once or twice),
items Zipf(0.9) over 200k IDs, with a planted taste structure (users and items in 32 groups,
80% of a user's events in their group). The last 10% of events (in time order) is held out;
quality is the AUC of each held-out event's item against a random item for the same user
(uniform negatives) and HitRate@10 of the held-out item among users seen in training.
Baseline: N = 1 measured in the same run.

    python benchmarks/bench_admission.py           # 3M events, ~1 min
    python benchmarks/bench_admission.py --quick   # 300k events
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import _common as C


def make_stream(n_events: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_user_ids, n_items, groups = 20_000_000, 200_000, 32
    users = (rng.zipf(1.05, n_events) - 1) % n_user_ids
    user_group = users % groups
    item_pop = C.zipf_probs(n_items, 0.9)
    items = rng.choice(n_items, size=n_events, p=item_pop)
    in_group = rng.random(n_events) < 0.8
    items = np.where(in_group, items - items % groups + user_group, items) % n_items
    return users.astype(np.int64), items.astype(np.int64)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.events = 300_000
    rt, err = C.import_rtrec()
    if rt is None:
        print(err)
        return 1
    users, items = make_stream(args.events)
    cut = int(len(users) * 0.9)
    train_u, train_i, test_u, test_i = users[:cut], items[:cut], users[cut:], items[cut:]
    rng = np.random.default_rng(1)
    negatives = rng.integers(0, 200_000, len(test_u))
    distinct_users = len(np.unique(train_u))
    once = int((np.unique(train_u, return_counts=True)[1] == 1).sum())
    print(f"stream: {len(users):,} events, {distinct_users:,} distinct users in training "
          f"({once:,} seen once), "
          f"{len(np.unique(train_i)):,} items; dim {args.dim}, BPR, AdaGrad, {args.epochs} epochs, 2 threads")
    rows, baseline_rows = [], None
    for n in (1, 2, 5):
        rec = rt.Recommender(model="mf", dim=args.dim, loss="bpr", min_count=n, num_threads=2, seed=0)
        t0 = time.perf_counter()
        rec.fit(train_u, train_i, epochs=args.epochs)
        secs = time.perf_counter() - t0
        s = rec.stats()
        pos, neg = rec.predict(test_u, test_i), rec.predict(test_u, negatives)
        auc = float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / len(pos))
        known = np.unique(test_u[np.isin(test_u, train_u)])[:2000]
        ids, _ = rec.recommend_batch(known, k=10)
        held = {}
        for u, i in zip(test_u, test_i, strict=True):
            held.setdefault(int(u), set()).add(int(i))
        hits = (np.mean([bool(held[int(u)] & set(row.tolist())) for u, row in zip(known, ids, strict=True)])
                if len(known) else float("nan"))
        rows.append([f"min_count={n}", f"{s['n_users']:,}", f"{s['n_items']:,}",
                     f"{s['memory_bytes'] / 2**20:,.0f} MiB",
                     f"{s['not_admitted']:,}", f"{auc:.4f}", f"{hits:.4f}", f"{secs:.1f} s"])
        if baseline_rows is None:  # N = 1, the first setting
            baseline_rows = s["n_users"] + s["n_items"]
        rows[-1].append(f"{(s['n_users'] + s['n_items']) / baseline_rows:.2f}×")
    C.print_table(["setting", "user rows", "item rows", "memory", "events not learned", "AUC (uniform neg.)",
                   "HitRate@10 (known users)", "fit", "rows vs N=1"], rows)
    print("memory includes the two 8 MiB count-min sketches when min_count > 1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
