"""Sweep of the mf family's defaults over two data sets, tuned on validation splits only.

Data sets: MovieLens ml-latest-small (ratings; relevant = rating >= 4) and the project's
synthetic stream (rtrec_native.datasets.generate_stream, 2,000 users x 1,000 items x 100k
events with drift; relevant = click). For each: the per-user temporal split (last 20% of
each user's events) is the *test* split, reported at the end only; the sweep tunes on a
second per-user split of the test split's training part (its last 20% per user as
validation), so the reported numbers are never the ones the settings were chosen on.

Search: coordinate descent from the current defaults, two rounds over the parameters
(optimizer, learning_rate, l2, init_std, negatives, negative_sampling, epochs), each value
scored by the geometric mean over the data sets of validation Recall@10 (dim 64, 2 threads,
seed 0); a value replaces the current one only if it scores 1% higher (about the noise of
multi-threaded runs). Then the test split with the chosen settings,
the previous defaults, implicit's ALS and BPR (their defaults, factors 64) and popularity.

    python benchmarks/sweep_mf.py               # the sweep + the test table
    python benchmarks/sweep_mf.py --test-only   # the test table for the current defaults
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import _common as C
from _common import find_dataset

MOVIELENS = find_dataset("ml-latest-small") / "ratings.csv"

GRID = {
    "optimizer": ["adagrad", "sgd"],
    "learning_rate": [0.02, 0.05, 0.1, 0.2, 0.4],
    "l2": [0.0, 1e-4, 1e-3, 1e-2, 3e-2],
    "init_std": [0.01, 0.05, 0.1, 0.3],
    "negatives": [1, 3, 5, 10],
    "negative_sampling": ["uniform", "popularity"],
    "epochs": [5, 10, 20, 40],
}
MARGIN = 0.01
# The defaults before this sweep (fit's epochs was 10), for the test table.
PREVIOUS = {"optimizer": "adagrad", "learning_rate": 0.05, "l2": 1e-4, "init_std": 0.1, "negatives": 1,
            "negative_sampling": "uniform", "epochs": 10}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS, help="a MovieLens-style ratings.csv")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-only", action="store_true", help="skip the sweep: the test table for the defaults")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def datasets(rt, path):
    from rtrec_native import data, evaluation
    from rtrec_native import datasets as synthetic

    ml, _ = data.load_events(path)
    stream = synthetic.generate_stream(n_users=2000, n_items=1000, n_events=100_000, seed=0).events
    out = {}
    for name, events, threshold in (("movielens", ml, 4.0), ("synthetic", stream, 1.0)):
        test = evaluation.temporal_split(events, 0.2, by="user")
        validation = evaluation.temporal_split(test.train, 0.2, by="user")
        out[name] = {"test": test, "validation": validation, "threshold": threshold}
    return out


def recall(rt, split, threshold, setting, threads, seed):
    from rtrec_native import evaluation

    params = {k: v for k, v in setting.items() if k != "epochs"}
    rec = rt.Recommender(model="mf", dim=64, num_threads=threads, seed=seed, **params)
    rec.fit(split.train, epochs=setting["epochs"])
    return evaluation.evaluate_split(rec, split, k=10, positive_threshold=threshold).metrics["recall@10"]


def score(rt, data, setting, args, cache):
    key = json.dumps(setting, sort_keys=True)
    if key not in cache:
        per = {name: recall(rt, d["validation"], d["threshold"], setting, args.threads, args.seed)
               for name, d in data.items()}
        cache[key] = (math.exp(np.mean([math.log(max(v, 1e-9)) for v in per.values()])), per)
    return cache[key]


def sweep(rt, data, start, args):
    current, cache, log = dict(start), {}, []
    best, _ = score(rt, data, current, args, cache)
    for rnd in range(args.rounds):
        for param, values in GRID.items():
            for value in values:
                trial = {**current, param: value}
                s, per = score(rt, data, trial, args, cache)
                log.append({"round": rnd, "param": param, "value": value, "score": s, **per})
                print(f"  round {rnd} {param}={value}: {s:.4f} "
                      + " ".join(f"{k} {v:.4f}" for k, v in per.items()), file=sys.stderr, flush=True)
                # A change must beat the current setting by 1% (the multi-threaded runs'
                # own noise is about that), so noise does not pick values.
                if s > best * (1.0 + MARGIN):
                    best, current = s, trial
    return current, best, log


def test_table(rt, data, settings, args):
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    from _baselines import ImplicitModel, Popularity
    from rtrec_native import evaluation

    rows, results = [], {}
    for name, d in data.items():
        split = d["test"]
        contenders = [(label, lambda s=s, split=split, d=d: recall(rt, split, d["threshold"], s, args.threads,
                                                                   args.seed))
                      for label, s in settings]
        for label, factory in (
            ("implicit ALS", lambda: ImplicitModel(lambda: AlternatingLeastSquares(factors=64, random_state=args.seed),
                                                   "als")),
            ("implicit BPR", lambda: ImplicitModel(
                lambda: BayesianPersonalizedRanking(factors=64, random_state=args.seed), "bpr")),
            ("popularity", Popularity),
        ):
            def run(factory=factory, split=split, d=d):
                model = factory().fit(split.train.users, split.train.items, split.train.labels)
                return evaluation.evaluate_split(model, split, k=10,
                                                 positive_threshold=d["threshold"]).metrics["recall@10"]
            contenders.append((label, run))
        for label, run in contenders:
            value = run()
            results[(name, label)] = value
            rows.append([name, label, f"{value:.4f}"])
    return rows, results


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import implicit  # noqa: F401  (before rtrec_native, see _common.import_rtrec)
    except ImportError:
        print("sweep_mf: the comparison needs implicit: pip install '.[bench]'", file=sys.stderr)
        return 1
    if not args.data.is_file():
        print(f"sweep_mf: no ratings file at {args.data} (MovieLens ml-latest-small expected)", file=sys.stderr)
        return 1
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"sweep_mf: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    C.print_env(C.env_report(extra_modules=("implicit",)))
    data = datasets(rt, args.data)
    defaults = rt.defaults("mf")
    current = {k: defaults[k] for k in GRID if k != "epochs"}
    current["epochs"] = rt.default_epochs("mf") if hasattr(rt, "default_epochs") else 10
    out = {"defaults": current}
    if not args.test_only:
        t0 = time.perf_counter()
        chosen, best, log = sweep(rt, data, PREVIOUS, args)
        print(f"\n## sweep ({args.rounds} rounds, {time.perf_counter() - t0:.0f} s): chosen {chosen}, "
              f"validation score {best:.4f}")
        C.print_table(["round", "parameter", "value", "score (geo. mean)"] + list(data),
                      [[r["round"], r["param"], r["value"], f"{r['score']:.4f}"] + [f"{r[n]:.4f}" for n in data]
                       for r in log])
        out.update(chosen=chosen, log=log)
        settings = [("rtrec mf, swept settings", chosen), ("rtrec mf, previous defaults", PREVIOUS)]
    else:
        settings = [("rtrec mf, defaults", current), ("rtrec mf, previous defaults", PREVIOUS)]
    rows, results = test_table(rt, data, settings, args)
    print("\n## test split (per-user last 20%; Recall@10, dim 64; never used for tuning)")
    C.print_table(["data set", "model", "Recall@10"], rows)
    out["test"] = {f"{d}/{m}": v for (d, m), v in results.items()}
    C.dump_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
