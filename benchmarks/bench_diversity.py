"""Diversity: the accuracy-diversity curve of ``recommend(..., diversity=λ)`` on MovieLens,
and what diversity costs in latency.

1. Curve. MovieLens ml-latest-small, the per-user temporal split (last 20% of each user's
   ratings are the test part; relevant = test ratings >= 4 of items the user had not rated;
   training items excluded from the lists): one model per family fitted on the training
   part (num_threads=1, so each fit is reproducible; one per seed, metrics averaged over
   the seeds: between two Hogwild fits HitRate@10 alone moves by ~5%), then
   ``evaluate_split(..., diversity=λ)`` for each λ on the same model. Reported beside HitRate@10
   and NDCG@10: intra-list diversity (ILD@10, mean pairwise cosine dissimilarity in the
   model's item space), novelty (mean -log2 p(item), p from training popularity, bits) and
   catalogue coverage. Relative changes are against λ = 0 of the same model.
2. Cost. A model over 100k items (dim 64, every item known, as in bench_topk): one
   ``recommend(u, k=10)`` vs ``recommend(u, k=10, diversity=0.3)`` per query, interleaved in
   rounds, same users; the median ratio is the figure (timings on a shared machine are noisy).

    python benchmarks/bench_diversity.py                 # both parts, both families
    python benchmarks/bench_diversity.py --quick         # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import _common as C
from _common import find_dataset

MOVIELENS = find_dataset("ml-latest-small") / "ratings.csv"
LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS, help="a MovieLens-style ratings.csv")
    p.add_argument("--families", nargs="+", default=["mf", "two_tower"], choices=["mf", "two_tower"])
    p.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS))
    p.add_argument("--epochs", type=int, default=10, help="fit epochs on the training part")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one fit per seed, metrics averaged")
    p.add_argument("--seed", type=int, default=0, help="seed of the cost part")
    p.add_argument("--png", type=Path, default=Path("diversity_curve.png"), help="where the curve is drawn")
    p.add_argument("--items", type=int, default=100_000, help="catalogue of the cost part")
    p.add_argument("--queries", type=int, default=400, help="timed queries per contender and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="num_threads of the cost part's model")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="small smoke configuration")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(families=["mf"], lambdas=[0.0, 0.3, 1.0], epochs=2, seeds=[0], items=10_000, queries=50,
                       rounds=2)
    return p.parse_args(argv)


def curve(rt, args):
    from rtrec_native import data, evaluation

    events, _ = data.load_events(args.data)
    split = evaluation.temporal_split(events, 0.2, by="user")
    rows, results = [], {}
    names = ("hitrate@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10")
    for family in args.families:
        per_seed = {lam: [] for lam in args.lambdas}
        for seed in args.seeds:
            t0 = time.perf_counter()
            rec = rt.Recommender(model=family, seed=seed, num_threads=1).fit(split.train, epochs=args.epochs)
            print(f"  fitted {family} (seed {seed}) in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            for lam in args.lambdas:
                out = evaluation.evaluate_split(rec, split, k=10, positive_threshold=4.0, diversity=lam)
                per_seed[lam].append(out.metrics)
        base = None
        for lam in args.lambdas:
            m = {name: float(np.mean([x[name] for x in per_seed[lam]])) for name in names}
            base = base or m
            results[(family, lam)] = m
            rows.append([family, f"{lam:g}", f"{m['hitrate@10']:.4f}", pct(m["hitrate@10"], base["hitrate@10"]),
                         f"{m['ndcg@10']:.4f}", f"{m['ild@10']:.4f}", pct(m["ild@10"], base["ild@10"]),
                         f"{m['novelty@10']:.2f}", f"{m['coverage@10']:.4f}"])
    return rows, results, len(events)


def pct(value, base):
    return "—" if base == 0 else f"{100 * (value / base - 1):+.1f}%"


def draw(results, args):
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("  (matplotlib not installed: no PNG; pip install '.[bench]')", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for family in args.families:
        xs = [results[(family, lam)]["ild@10"] for lam in args.lambdas]
        ys = [results[(family, lam)]["hitrate@10"] for lam in args.lambdas]
        ax.plot(xs, ys, marker="o", label=family)
        for lam, x, y in zip(args.lambdas, xs, ys, strict=True):
            ax.annotate(f"λ={lam:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("intra-list diversity @10 (mean pairwise 1 - cos)")
    ax.set_ylabel("HitRate@10 (per-user split)")
    ax.set_title("MovieLens ml-latest-small: accuracy vs diversity (MMR)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    plt.close(fig)
    return args.png


def cost(rt, args):
    rng = np.random.default_rng(args.seed)
    n = args.items
    items = np.concatenate([rng.permutation(n), rng.permutation(n)]).astype(np.int64)
    users = rng.integers(2_000, size=items.size).astype(np.int64)
    rec = rt.Recommender(model="mf", dim=64, loss="bpr", optimizer="sgd", num_threads=args.threads, seed=args.seed)
    rec.fit(users, items, epochs=1)
    assert rec.n_items == n
    queries = rng.choice(np.unique(users), size=args.queries).tolist()
    contenders = {"plain": {}, "diversity=0.3": {"diversity": 0.3}}
    times = {name: [] for name in contenders}
    for extra in contenders.values():  # warm-up
        for u in queries[:20]:
            rec.recommend(u, k=10, **extra)
    for r in range(args.rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            extra = contenders[name]
            for u in queries:
                t0 = time.perf_counter_ns()
                rec.recommend(u, k=10, **extra)
                times[name].append(time.perf_counter_ns() - t0)
    p50 = {name: float(np.median(t)) for name, t in times.items()}
    ratio = p50["diversity=0.3"] / p50["plain"]
    rows = [[name, f"{p50[name] / 1e3:.1f}", f"{np.percentile(times[name], 99) / 1e3:.1f}"] for name in contenders]
    return rows, ratio, p50


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"bench_diversity: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    C.print_env(C.env_report())
    payload = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.data.is_file():
        print(f"\n## 1. accuracy vs diversity: {args.data.parent.name}, per-user split 80/20, "
              f"k=10, fit {args.epochs} epochs, defaults otherwise, mean of seeds {args.seeds}")
        rows, results, n_events = curve(rt, args)
        C.print_table(["family", "λ", "HitRate@10", "Δ HR", "NDCG@10", "ILD@10", "Δ ILD", "novelty (bits)",
                       "coverage"], rows)
        png = draw(results, args)
        if png is not None:
            print(f"\nwrote {png}")
        payload["curve"] = {f"{family} {lam:g}": m for (family, lam), m in results.items()}
        payload["n_events"] = n_events
    else:
        print(f"\n(skipped the curve: no ratings file at {args.data})")
    print(f"\n## 2. cost: recommend(u, k=10) over {args.items:,} items, dim 64, num_threads={args.threads}, "
          f"{args.queries} queries x {args.rounds} rounds each, interleaved")
    rows, ratio, p50 = cost(rt, args)
    C.print_table(["call", "p50 µs", "p99 µs"], rows)
    print(f"\ndiversity=0.3 / plain, median latency: {ratio:.2f}x")
    payload["cost"] = {"p50_ns": p50, "ratio": ratio}
    C.dump_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
