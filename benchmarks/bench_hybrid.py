"""Refit and keep learning: the four freshness policies on the MovieLens replay.

The project's prequential evaluation (``rtrec_native.evaluation.prequential``) on MovieLens
ml-latest-small (../shared; research use only): positives are ratings >= 4, the first 20% of
events are the warm-up, every later micro-batch of 10 events is ranked before it is learned.
Policies: realtime (learns every event), periodic (refits from scratch every
``--retrain-every`` events: nine refits by default), static, and hybrid (the same refits,
every event learned in between; periodic and hybrid share each refit, fitted once). Both
families with their defaults, as ``rtrec evaluate`` runs them: the warm-up fit has the
family's default epochs (``rtrec_native.default_epochs``), each refit the replay's default
refit epochs (chosen on tuning data kept apart: sweep_hybrid.py). Several seeds; HitRate@10
pooled over the seeds (hits / trials), next to the real-time item co-occurrence reference
(benchmarks/_baselines.py) on the same events.

    python benchmarks/bench_hybrid.py                    # both families, 3 seeds
    python benchmarks/bench_hybrid.py --quick            # two_tower, 1 seed, realtime + hybrid
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
    p.add_argument("--data", type=Path, default=MOVIELENS)
    p.add_argument("--families", nargs="+", default=["two_tower", "mf"])
    p.add_argument("--policies", nargs="+", default=["realtime", "periodic", "static", "hybrid"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--retrain-every", type=int, default=None,
                   help="events between refits (default: the replayed events / 10, i.e. nine refits)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the warm-up fit (default: the family's)")
    p.add_argument("--refit-epochs", type=int, default=None, help="epochs of each refit (default: the replay's)")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(families=["two_tower"], policies=["realtime", "hybrid"], seeds=[0])
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rt, code = C.rtrec_on_data(args.data)
    if rt is None:
        return code
    from _baselines import ItemCooccurrence
    from rtrec_native import evaluation
    from rtrec_native.data import load_events

    events, _ = load_events(args.data)
    retrain_every = args.retrain_every or int(len(events) * 0.8 / 10) + 1
    C.print_env(C.env_report())
    pooled: dict[tuple[str, str], list[float]] = {}
    rows, results, epochs = [], {}, {}
    for family in args.families:
        for seed in args.seeds:
            t0 = time.perf_counter()
            report = evaluation.prequential(events, model={"model": family, "seed": seed}, policies=args.policies,
                                            positive_threshold=4.0, epochs=args.epochs or rt.default_epochs(family),
                                            refit_epochs=args.refit_epochs, retrain_every=retrain_every)
            epochs[family] = (report.config["epochs"], report.config["refit_epochs"])
            print(f"  {family} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            for policy, result in report.policies.items():
                n = result.metrics["n_ranked"]
                hits = result.metrics["hitrate@10"] * n
                pooled.setdefault((family, policy), [0.0, 0.0])
                pooled[(family, policy)][0] += hits
                pooled[(family, policy)][1] += n
                results.setdefault(f"{family}/{policy}", []).append(result.metrics["hitrate@10"])
    cooc = evaluation.prequential(events, model=ItemCooccurrence, policies=["realtime"], positive_threshold=4.0,
                                  retrain_every=retrain_every)
    cooc_hr = cooc.policies["realtime"].metrics["hitrate@10"]
    for family in args.families:
        realtime = pooled.get((family, "realtime"))
        base = realtime[0] / realtime[1] if realtime else float("nan")
        for policy in args.policies:
            hits, n = pooled[(family, policy)]
            hr = hits / n
            warm, refit = epochs[family]
            rows.append([family, f"{warm} / {refit}", policy, f"{hr:.4f}", f"{hr / base:.3f}", f"{hr / cooc_hr:.3f}",
                         " ".join(f"{v:.4f}" for v in results[f"{family}/{policy}"])])
    rows.append(["item co-occurrence", "", "realtime", f"{cooc_hr:.4f}", "", "1.000", ""])
    print(f"\n## MovieLens replay, refit every {retrain_every:,} events, seeds {args.seeds}: HitRate@10 pooled "
          "over seeds")
    C.print_table(["family", "epochs: warm-up / refit", "policy", "HitRate@10", "vs its realtime",
                   "vs co-occurrence", "per seed"], rows)
    if args.json:
        C.dump_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                "cooccurrence": cooc_hr})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
