"""two_tower quality: does learning from every event beat the baselines on real data?

Two protocols, both over MovieLens ml-latest-small (../shared; research use only):

1. The project's test-then-train replay (``rtrec_native.evaluation.prequential``): warm-up
   fit on the first 20% by time, then every later micro-batch of 10 events is ranked before
   it is learned; a trial is a user's first rating >= 4 of an item (HitRate@10, NDCG@10).
   Policies: realtime (learns every event), periodic (a fresh model refitted every 10,083
   events), static (frozen after warm-up). Models: two_tower and mf with their defaults (mf's
   loss for ratings is squared; mf with BPR too), plus two references learning in real time:
   an item co-occurrence kNN and a popularity counter (benchmarks/_baselines.py).
2. The per-user temporal split: the last 20% of each user's ratings is the test part,
   relevant = test ratings >= 4 of items the user had not rated, training items excluded;
   Recall@10 and NDCG@10 of models fitted on the training part: two_tower and mf (defaults),
   implicit's ALS and BPR (their defaults, factors 64), popularity.

    pip install '.[bench]'
    python benchmarks/bench_two_tower_quality.py            # both protocols
    python benchmarks/bench_two_tower_quality.py --quick    # realtime only, fewer models
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _common as C

MOVIELENS = C.find_dataset("ml-latest-small") / "ratings.csv"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS, help="a MovieLens-style ratings.csv")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the warm-up fit and of each refit")
    p.add_argument("--split-epochs", type=int, default=20, help="epochs of the split's fits (rtrec models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="the replay's realtime policy only; no split")
    return p.parse_args(argv)


def replay(rt, events, args):
    from _baselines import ItemCooccurrence, Popularity
    from rtrec_native import evaluation

    policies = ("realtime",) if args.quick else ("realtime", "periodic", "static")
    contenders = [
        ("two_tower", {"model": "two_tower", "seed": args.seed}, policies),
        ("mf (squared)", {"model": "mf", "seed": args.seed}, policies),
        ("mf (bpr)", {"model": "mf", "loss": "bpr", "seed": args.seed}, policies),
        ("item co-occurrence", ItemCooccurrence, ("realtime",)),
        ("popularity", Popularity, ("realtime",)),
    ]
    rows, results = [], {}
    for name, model, pols in contenders:
        t0 = time.perf_counter()
        report = evaluation.prequential(events, model=model, policies=pols, positive_threshold=4.0,
                                        epochs=args.epochs)
        seconds = time.perf_counter() - t0
        for policy, result in report.policies.items():
            hr, ndcg = result.metrics["hitrate@10"], result.metrics["ndcg@10"]
            results[(name, policy)] = hr
            rows.append([name, policy, f"{hr:.4f}", f"{ndcg:.4f}", f"{result.events_per_s:,.0f}"])
        print(f"  replayed {name} in {seconds:.0f} s", file=sys.stderr, flush=True)
    n_ranked = report.stream["n_ranked"]
    return rows, results, n_ranked


def split_recall(rt, events, args):
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    from _baselines import ImplicitModel, Popularity
    from rtrec_native import evaluation

    split = evaluation.temporal_split(events, 0.2, by="user")
    contenders = [
        ("two_tower", lambda: rt.Recommender(model="two_tower", seed=args.seed).fit(
            split.train, epochs=args.split_epochs)),
        ("mf (defaults)", lambda: rt.Recommender(model="mf", seed=args.seed).fit(
            split.train, epochs=args.split_epochs)),
        ("implicit ALS", lambda: ImplicitModel(lambda: AlternatingLeastSquares(factors=64, random_state=args.seed),
                                               "als").fit(split.train.users, split.train.items, split.train.labels)),
        ("implicit BPR", lambda: ImplicitModel(lambda: BayesianPersonalizedRanking(factors=64, random_state=args.seed),
                                               "bpr").fit(split.train.users, split.train.items, split.train.labels)),
        ("popularity", lambda: Popularity().fit(split.train.users, split.train.items, split.train.labels)),
    ]
    rows, results = [], {}
    for name, build in contenders:
        model = build()
        out = evaluation.evaluate_split(model, split, k=10, positive_threshold=4.0)
        results[name] = out.metrics["recall@10"]
        rows.append([name, f"{out.metrics['recall@10']:.4f}", f"{out.metrics['ndcg@10']:.4f}", f"{out.n_ranked_users}"])
    return rows, results


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import implicit  # noqa: F401  (before rtrec_native, see _common.import_rtrec)
    except ImportError:
        if not args.quick:
            print("bench_two_tower_quality: the split needs implicit: pip install '.[bench]'", file=sys.stderr)
            return 1
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"bench_two_tower_quality: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    if not args.data.is_file():
        print(f"bench_two_tower_quality: no ratings file at {args.data} (MovieLens ml-latest-small expected "
              "in ../shared/datasets)", file=sys.stderr)
        return 1
    from rtrec_native import data

    events, _ = data.load_events(args.data)
    C.print_env(C.env_report(extra_modules=("implicit",)))
    print(f"data: {args.data}, {len(events):,} ratings; two_tower defaults {rt.defaults('two_tower')}\n")

    rows, results, n_ranked = replay(rt, events, args)
    print(f"Test-then-train replay (warm-up 20%, micro-batches of 10, {n_ranked:,} ranked trials, "
          f"warm-up/refit epochs {args.epochs}):")
    C.print_table(["model", "policy", "HitRate@10", "NDCG@10", "events/s"], rows)
    tt = results[("two_tower", "realtime")]
    best_mf = max(results[(m, "realtime")] for m in ("mf (squared)", "mf (bpr)"))
    others = {key: hr for key, hr in results.items() if key != ("two_tower", "realtime")}
    best_other = max(others, key=others.get)
    print(f"\ntwo_tower realtime / best mf realtime: {tt / best_mf:.2f}x; best other contender: "
          f"{best_other[0]} {best_other[1]} {others[best_other]:.4f} ({tt / others[best_other]:.2f}x)\n")

    if not args.quick:
        rows, results = split_recall(rt, events, args)
        print(f"Per-user temporal split (last 20% of each user; relevant: rating >= 4, new items; "
              f"rtrec fits {args.split_epochs} epochs):")
        C.print_table(["model", "Recall@10", "NDCG@10", "users ranked"], rows)
        print(f"\ntwo_tower / implicit ALS Recall@10: {results['two_tower'] / results['implicit ALS']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
