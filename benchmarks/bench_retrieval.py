"""Retrieval filters, similar items and anonymous sessions: each one's latency as a ratio
against the unfiltered ``recommend`` of the same model, measured in the same run.

A model with N items (default 1M, dim 64; every item learned from one event, users from a
Zipf stream) answers, one query per call, 1 thread:
  - recommend(u)                                       the baseline (a full exact scan)
  - recommend(u, items=<1,000 of N>)                   target <= 1/50 of the baseline
  - recommend(u, exclude=<1,000>) with 10% hidden      target <= 1.1x
  - recommend(u, tags=[a tag held by 1% of items])     target <= 1/20
  - similar_items(i)                                   target <= 1.1x
  - two_tower: recommend_for_history(<50 items>) vs recommend(known user)   target <= 1.2x
Contenders alternate in rounds (rotating order); medians over all timed calls of all rounds.

    python benchmarks/bench_retrieval.py            # 1M items
    python benchmarks/bench_retrieval.py --quick    # 100k items, fewer queries
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import _common as C


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=40, help="timed calls per contender per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrieval", nargs="+", default=["compact", "exact"], help="retrieval modes to measure")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(items=100_000, users=5_000, queries=20, rounds=3)
    return p.parse_args(argv)


def build(rt, family: str, args) -> tuple:
    """A model where every item has a row: one event per item, users drawn Zipf-like."""
    rng = np.random.default_rng(args.seed)
    n = args.items
    items = rng.permutation(n).astype(np.int64)
    users = (rng.zipf(1.3, size=n) % args.users).astype(np.int64)
    extra = {"tower": (128,), "history": 50} if family == "two_tower" else {}
    rec = rt.Recommender(model=family, dim=args.dim, num_threads=1, seed=args.seed, retrieval=args.mode, **extra)
    for start in range(0, n, 200_000):
        rec.update(users[start:start + 200_000], items[start:start + 200_000])
    return rec, users, rng


def time_calls(calls: dict, args) -> dict[str, float]:
    """Median ns per call of each contender, alternating contenders in rotating order."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = calls[name]
            fn(0)  # warm
            for q in range(args.queries):
                t = time.perf_counter_ns()
                fn(q)
                samples[name].append(time.perf_counter_ns() - t)
    return {name: C.median(v) for name, v in samples.items()}


def mf_contenders(rt, args) -> tuple[dict, dict]:
    rec, users, rng = build(rt, "mf", args)
    n = args.items
    query_users = rng.choice(np.unique(users), size=args.queries, replace=True).tolist()
    allow = rng.choice(n, size=1000, replace=False).tolist()
    deny = rng.choice(n, size=1000, replace=False).tolist()
    tagged = rng.choice(n, size=n // 100, replace=False)
    rec.set_item_features(tagged, [["rare"]] * len(tagged))
    query_items = rng.choice(n, size=args.queries, replace=False).tolist()
    base = {"recommend(u)": lambda q: rec.recommend(query_users[q], k=10)}
    unhidden = {
        "recommend(u, items=1,000)": lambda q: rec.recommend(query_users[q], k=10, items=allow),
        "recommend(u, tags=1% tag)": lambda q: rec.recommend(query_users[q], k=10, tags=["rare"]),
        "similar_items(i)": lambda q: rec.similar_items(query_items[q], k=10),
    }
    times = time_calls({**base, **unhidden}, args)
    # 10% hidden: the baseline again in the same rounds, hidden set on for the filtered one only.
    hidden = rng.choice(n, size=n // 10, replace=False).tolist()

    def with_hidden(q):
        return rec.recommend(query_users[q], k=10, exclude=deny)

    def baseline_again(q):
        return rec.recommend(query_users[q], k=10)

    samples = {"recommend(u)": [], "recommend(u, exclude=1,000) + 10% hidden": []}
    for _ in range(args.rounds):
        for q in range(args.queries):
            t = time.perf_counter_ns()
            baseline_again(q)
            samples["recommend(u)"].append(time.perf_counter_ns() - t)
        rec.hide(hidden)
        for q in range(args.queries):
            t = time.perf_counter_ns()
            with_hidden(q)
            samples["recommend(u, exclude=1,000) + 10% hidden"].append(time.perf_counter_ns() - t)
        rec.unhide(hidden)
    hidden_times = {k: C.median(v) for k, v in samples.items()}
    return times, hidden_times


def two_tower_contenders(rt, args) -> dict:
    rec, users, rng = build(rt, "two_tower", args)
    # Users with a full history ring (50 items), and anonymous sessions of 50 items.
    heavy = np.unique(users, return_counts=True)
    known = heavy[0][heavy[1] >= 50][: args.queries].tolist() or heavy[0][np.argsort(-heavy[1])][:args.queries].tolist()
    sessions = [rng.choice(args.items, size=50, replace=False).tolist() for _ in range(args.queries)]
    return time_calls({
        "recommend(known user, 50-item history)": lambda q: rec.recommend(known[q % len(known)], k=10),
        "recommend_for_history(50 items)": lambda q: rec.recommend_for_history(sessions[q], k=10),
    }, args)


def table_rows(mode: str, times: dict, hidden: dict, tt: dict) -> list[list[str]]:
    """The table's rows of one retrieval mode: each call's median and its ratio to the baseline."""
    base = times["recommend(u)"]
    rows = [[mode, "mf", "recommend(u)", C.fmt_ms(base), "1.000", "baseline", ""]]
    targets = {"recommend(u, items=1,000)": ("<= 0.020", lambda r: r <= 1 / 50),
               "recommend(u, tags=1% tag)": ("<= 0.050", lambda r: r <= 1 / 20),
               "similar_items(i)": ("<= 1.10", lambda r: r <= 1.10)}
    for name, (text, ok) in targets.items():
        ratio = times[name] / base
        verdict = "met" if ok(ratio) else "NOT met"
        rows.append([mode, "mf", name, C.fmt_ms(times[name]), f"{ratio:.3f}", text, verdict])
    name = "recommend(u, exclude=1,000) + 10% hidden"
    ratio = hidden[name] / hidden["recommend(u)"]
    verdict = "met" if ratio <= 1.10 else "NOT met"
    rows.append([mode, "mf", name, C.fmt_ms(hidden[name]), f"{ratio:.3f}", "<= 1.10", verdict])
    t_base = tt["recommend(known user, 50-item history)"]
    t_ratio = tt["recommend_for_history(50 items)"] / t_base
    rows.append([mode, "two_tower", "recommend(known user, 50-item history)", C.fmt_ms(t_base), "1.000", "baseline",
                 ""])
    rows.append([mode, "two_tower", "recommend_for_history(50 items)", C.fmt_ms(tt["recommend_for_history(50 items)"]),
                 f"{t_ratio:.3f}", "<= 1.20", "met" if t_ratio <= 1.20 else "NOT met"])
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, reason = C.import_rtrec()
    if rt is None:
        print(C.pending(reason))
        return 1
    env = C.env_report()
    C.print_env(env)
    print(f"\n## retrieval over {args.items:,} items, dim {args.dim}, 1 thread, k=10, "
          f"{args.rounds} rounds x {args.queries} calls (medians)")
    rows, raw = [], {}
    for mode in args.retrieval:
        args.mode = mode
        times, hidden = mf_contenders(rt, args)
        tt = two_tower_contenders(rt, args)
        raw[mode] = {"mf": times, "mf_hidden": hidden, "two_tower": tt}
        rows.extend(table_rows(mode, times, hidden, tt))
    C.print_table(["retrieval", "family", "call", "median", "ratio to baseline", "target", ""], rows)
    if args.json:
        C.dump_json(args.json, {"env": env, "args": vars(args), "results": raw})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
