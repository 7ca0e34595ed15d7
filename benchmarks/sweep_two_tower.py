"""How two_tower's defaults were chosen: one setting changed at a time around them.

Tuning data, kept apart from the reported benchmark: the first 60% (by time) of MovieLens
ml-latest-small replayed test-then-train on its own (its own 20% warm-up; positives are
ratings >= 4), and the built-in synthetic stream (seed 0). The figure is realtime
HitRate@10 of ``rtrec_native.evaluation.prequential``; the full MovieLens replay in
bench_two_tower_quality.py reports on the whole stream. Runs use 2 threads (Hogwild: the
third decimal moves a little from run to run).

    python benchmarks/sweep_two_tower.py           # the table below the defaults
    python benchmarks/sweep_two_tower.py --quick   # three settings
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import _common as C
from _common import find_dataset

MOVIELENS = find_dataset("ml-latest-small") / "ratings.csv"

# One change at a time from the defaults (the core's; printed at the top of the output).
SETTINGS = [
    {},
    {"negatives": 16}, {"negatives": 256},
    {"learning_rate": 0.05}, {"learning_rate": 0.2},
    {"l2": 1e-4}, {"l2": 1e-2},
    {"dim": 32}, {"dim": 128},
    {"tower": (64,)}, {"tower": (256,)}, {"tower": (128, 128)},
    {"history": 20}, {"history": 100},
    {"recency": 0.8}, {"recency": 1.0},
    {"optimizer": "sgd"},
    {"negative_sampling": "popularity"},
    {"loss": "bpr"},
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"sweep_two_tower: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    if not MOVIELENS.is_file():
        print(f"sweep_two_tower: no MovieLens ratings at {MOVIELENS}", file=sys.stderr)
        return 1
    from rtrec_native import data, datasets, evaluation

    movielens, _ = data.load_events(MOVIELENS)
    order = np.argsort(movielens.timestamps, kind="stable")
    tuning = movielens[order][: int(len(movielens) * 0.6)]
    synthetic = datasets.synthetic_stream(seed=0)
    defaults = rt.defaults("two_tower")
    keys = ("dim", "loss", "optimizer", "learning_rate", "l2", "negatives", "tower", "history", "recency",
            "negative_sampling")
    print("defaults:", {k: defaults[k] for k in keys}, "\n")
    rows = []
    for change in SETTINGS[:3] if args.quick else SETTINGS:
        model = {"model": "two_tower", **change}
        ml = evaluation.prequential(tuning, model=model, policies=["realtime"], positive_threshold=4.0)
        syn = evaluation.prequential(synthetic, model=model, policies=["realtime"])
        label = ", ".join(f"{k}={v}" for k, v in change.items()) or "(defaults)"
        rows.append([label, f"{ml.policies['realtime'].metrics['hitrate@10']:.4f}",
                     f"{syn.policies['realtime'].metrics['hitrate@10']:.4f}"])
        print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    C.print_table(["setting", "MovieLens first 60%", "synthetic"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
