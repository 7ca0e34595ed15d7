"""How the refits' epochs were chosen: the hybrid policy with each number of refit epochs.

Tuning data, kept apart from the reported replay (bench_hybrid.py reports on the whole
stream), as for the families' defaults (sweep_two_tower.py): the first 60% (by time) of
MovieLens ml-latest-small (../shared; research use only) replayed test-then-train on its own
with ``rtrec_native.evaluation.prequential``: its own 20% warm-up (the family's default
epochs), positives are ratings >= 4, micro-batches of 10, nine refits (every
``len * 0.8 / 10 + 1`` events; ``--refits`` tries other schedules). The figure is HitRate@10
pooled over the seeds (hits / trials) of realtime (which has no refits) and of hybrid with
each ``refit_epochs``, as a ratio to realtime in the same run, next to the real-time item
co-occurrence reference (benchmarks/_baselines.py) on the same events.

    python benchmarks/sweep_hybrid.py                 # refit epochs, both families, seeds 0 1
    python benchmarks/sweep_hybrid.py --families two_tower --refits 4 9 19 --refit-epochs 10
    python benchmarks/sweep_hybrid.py --quick         # two_tower, seed 0, refit epochs 1 and 5
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

import _common as C

MOVIELENS = C.find_dataset("ml-latest-small") / "ratings.csv"
REFIT_EPOCHS = {"two_tower": [1, 3, 5, 10, 20], "mf": [5, 10, 20, 40, 80]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS)
    p.add_argument("--fraction", type=float, default=0.6, help="the tuning prefix of the stream, by time")
    p.add_argument("--families", nargs="+", default=["two_tower", "mf"])
    p.add_argument("--refit-epochs", type=int, nargs="+", default=None,
                   help="refit epochs to try (default: per family, " +
                   "; ".join(f"{f} {' '.join(map(str, e))}" for f, e in REFIT_EPOCHS.items()) + ")")
    p.add_argument("--refits", type=int, nargs="+", default=[9],
                   help="refits over the replayed part (evenly spaced by event count; default: 9)")
    p.add_argument("--learning-rate", type=float, default=None, help="the model's learning rate (default: its own)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--no-cooccurrence", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(families=["two_tower"], refit_epochs=[1, 5], seeds=[0], no_cooccurrence=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rt, code = C.rtrec_on_data(args.data)
    if rt is None:
        return code
    from rtrec_native import evaluation
    from rtrec_native.data import load_events

    events = load_events(args.data)[0]
    order = np.argsort(events.timestamps, kind="stable")
    tuning = events[order][: int(len(events) * args.fraction)]
    schedules = {n: int(len(tuning) * 0.8 / (n + 1)) + 1 for n in args.refits}
    C.print_env(C.env_report())
    rows, results = [], {}
    for family in args.families:
        epochs = rt.default_epochs(family)
        model = {"model": family} if args.learning_rate is None else {"model": family,
                                                                       "learning_rate": args.learning_rate}
        pooled: dict[str, list[float]] = {}

        def add(label: str, result, pooled=pooled, family=family) -> None:
            n = result.metrics["n_ranked"]
            pooled.setdefault(label, [0.0, 0.0])
            pooled[label][0] += result.metrics["hitrate@10"] * n
            pooled[label][1] += n
            results.setdefault(f"{family}/{label}", []).append(result.metrics["hitrate@10"])

        for seed in args.seeds:
            t0 = time.perf_counter()
            first = True
            for retrain_every, refit_epochs in itertools.product(
                    schedules.values(), args.refit_epochs or REFIT_EPOCHS[family]):
                policies = ["realtime", "hybrid"] if first else ["hybrid"]
                report = evaluation.prequential(tuning, model={**model, "seed": seed}, policies=policies,
                                                positive_threshold=4.0, epochs=epochs, refit_epochs=refit_epochs,
                                                retrain_every=retrain_every)
                if first:
                    add("realtime", report.policies["realtime"])
                refits = len(report.policies["hybrid"].refits_at)
                add(f"hybrid, {refits} refits, refit epochs {refit_epochs}", report.policies["hybrid"])
                first = False
            print(f"  {family} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        base = pooled["realtime"][0] / pooled["realtime"][1]
        for label, (hits, n) in pooled.items():
            rows.append([family, f"{epochs}", label, f"{hits / n:.4f}", f"{hits / n / base:.3f}",
                         " ".join(f"{v:.4f}" for v in results[f"{family}/{label}"])])
    if not args.no_cooccurrence:
        from _baselines import ItemCooccurrence

        cooc = evaluation.prequential(tuning, model=ItemCooccurrence, policies=["realtime"], positive_threshold=4.0)
        rows.append(["item co-occurrence", "", "realtime", f"{cooc.policies['realtime'].metrics['hitrate@10']:.4f}",
                     "", ""])
    lr = "" if args.learning_rate is None else f", learning_rate {args.learning_rate:g}"
    every = ", ".join(f"{n} refits: every {e:,} events" for n, e in schedules.items())
    print(f"\n## MovieLens first {args.fraction:.0%} ({len(tuning):,} events; {every}){lr}, seeds {args.seeds}: "
          "HitRate@10 pooled over seeds")
    C.print_table(["family", "warm-up epochs", "policy", "HitRate@10", "vs its realtime", "per seed"], rows)
    if args.json:
        C.dump_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
