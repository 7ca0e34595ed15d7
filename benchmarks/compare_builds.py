"""Two builds of rtrec_native side by side: per-event cost and fit time, and whether they learn
the same model.

A refactoring of the core must leave the per-event path as fast as it was and, with 1 thread
and the same seed, the same model. This script runs a baseline build and a candidate build in
alternating subprocesses (round by round, order rotated, so that machine noise hits both
alike) and reports, for both families:
  - ``update_one`` p50 (ns per call, warm IDs, Python ints/floats as a web handler passes them),
  - ``fit`` wall time (1 thread),
  - a fingerprint of the fitted model's predictions and top-10 lists (1 thread, fixed seed):
    equal fingerprints mean the two builds learned bit-for-bit the same model.
Ratios are candidate / baseline medians over the rounds.

Each build is a directory put first on PYTHONPATH (holding an ``rtrec_native`` package), or
``installed`` for the one the interpreter imports by itself. For example, the installed build
of the previous commit against a staged build of this one:

    python benchmarks/compare_builds.py --baseline installed --candidate /tmp/stage
    python benchmarks/compare_builds.py --baseline installed --candidate /tmp/stage --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FAMILIES = ("mf", "two_tower")


def _child(family: str, calls: int, events: int) -> dict:
    """Runs inside a subprocess: times one build on one family."""
    import hashlib

    import numpy as np

    import rtrec_native as rt

    rng = np.random.default_rng(0)
    n_users, n_items = 2_000, 1_000
    users = rng.integers(0, n_users, events)
    items = np.minimum(rng.zipf(1.3, events) - 1, n_items - 1)
    rec = rt.Recommender(model=family, num_threads=1, seed=0)
    began = time.perf_counter()
    rec.fit(users, items, epochs=2)
    fit_seconds = time.perf_counter() - began
    probe_users, probe_items = np.repeat(np.arange(50), 40), np.tile(np.arange(40), 50)
    digest = hashlib.sha256(rec.predict(probe_users, probe_items).tobytes())
    for user in range(20):
        digest.update(np.asarray(rec.recommend(user, k=10)[0]).tobytes())
    u, i = users[:calls].tolist(), items[:calls].tolist()
    update_one = rec.update_one
    timings = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(calls):
        start = clock()
        update_one(u[k], i[k])
        timings[k] = clock() - start
    return {"update_one_p50_ns": float(np.median(timings)), "fit_s": fit_seconds,
            "fingerprint": digest.hexdigest()[:16]}


def _run(build: str, family: str, calls: int, events: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if build != "installed":
        env["PYTHONPATH"] = build + os.pathsep + env.get("PYTHONPATH", "")
    code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"from compare_builds import _child; print(json.dumps(_child({family!r}, {calls}, {events})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="directory with the baseline rtrec_native, or 'installed'")
    p.add_argument("--candidate", required=True, help="directory with the candidate rtrec_native, or 'installed'")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=30_000, help="timed update_one calls per run")
    p.add_argument("--events", type=int, default=60_000, help="events of each fit")
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--quick", action="store_true", help="3 rounds, fewer calls and events")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.events = 3, 5_000, 10_000
    builds = {"baseline": args.baseline, "candidate": args.candidate}
    results: dict = {(b, f): [] for b in builds for f in args.families}
    for r in range(args.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for family in args.families:
            for name in order:
                results[(name, family)].append(_run(builds[name], family, args.calls, args.events))
    print(f"{args.rounds} rounds, {args.calls:,} update_one calls and a {args.events:,}-event fit (1 thread) each")
    print("| family | update_one p50 baseline | candidate | ratio | fit baseline | candidate | ratio | same model |")
    print("|---|---|---|---|---|---|---|---|")
    for family in args.families:
        base, cand = results[("baseline", family)], results[("candidate", family)]
        b_ns = statistics.median(x["update_one_p50_ns"] for x in base)
        c_ns = statistics.median(x["update_one_p50_ns"] for x in cand)
        b_fit = statistics.median(x["fit_s"] for x in base)
        c_fit = statistics.median(x["fit_s"] for x in cand)
        prints = {x["fingerprint"] for x in base}
        same = len(prints) == 1 and prints == {x["fingerprint"] for x in cand}
        print(f"| {family} | {b_ns:,.0f} ns | {c_ns:,.0f} ns | {c_ns / b_ns:.3f} | {b_fit:.3f} s | {c_fit:.3f} s | "
              f"{c_fit / b_fit:.3f} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
