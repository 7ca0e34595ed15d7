"""Eviction (max_rows, evict): resident memory stays flat while 10M+ distinct IDs stream
through a model capped at 1M rows per table, against the same stream without a cap.

Stream: every event brings a never-seen user ID (IDs scattered over [0, 2^63) by an odd
multiplier, so they are distinct but not sequential); items are drawn Zipf(0.9) from a
20k-item catalogue; event times increase by 1 ms per event. Events go to ``rec.update`` in
batches of 50k (BPR, AdaGrad, dim 32, one thread). Three phases, each in a fresh child process
(this script re-invokes itself with ``--mode``) so that one phase's heap does not hide or
inflate another's:

  bounded    Recommender(model="mf", dim=32, max_rows=1M): 12M IDs. Every 1M IDs: n_users, evicted_users,
             stats()["memory_bytes"], VmRSS from /proc/self/status, events/s of the segment
             (update calls only; the data is drawn outside the timer) and its slowest batch.
             Then evict(older_than=500 s of stream time) on demand, and 500k more new IDs
             into the freed rows.
  unbounded  the same stream without max_rows, first 3M IDs only (memory grows linearly).
  per-row    dim 32 and 64, SGD and AdaGrad: 1M distinct users (one event each, items from a
             1000-item catalogue) into an uncapped model; memory_bytes / rows and the VmRSS
             delta / rows (delta from just before the model is built; the input arrays exist
             before that point).

Flat means: VmRSS after warm-up (2 x max_rows IDs) equals VmRSS at the end, and RSS grows by
~0 MiB per million IDs after warm-up, against the unbounded run's linear growth.
Counts are checked: n_users + evicted_users == IDs streamed, n_users <= max_rows after every
call, no item evicted (the catalogue is below the cap).

    python benchmarks/bench_eviction.py            # 12M IDs, ~30 s on 2 cores (after --wait-quiet)
    python benchmarks/bench_eviction.py --quick    # 1M IDs, max_rows 100k, ~5 s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import _common as C

ID_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: k -> k * ID_MULT mod 2^63 is a bijection
MASK63 = np.uint64((1 << 63) - 1)
MiB = 2**20


def rss_bytes() -> dict:
    """VmRSS and VmHWM (peak) of this process, bytes, from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val, unit = line.split()
                assert unit == "kB"
                out[key[:-1]] = int(val) * 1024
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def user_ids(start: int, stop: int) -> np.ndarray:
    k = np.arange(start, stop, dtype=np.uint64)
    return ((k * ID_MULT) & MASK63).astype(np.int64)


class Stream:
    """Batches of (users, items, timestamps): user IDs start..stop, each new; items Zipf(0.9)."""

    def __init__(self, n_items: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.n_items = n_items
        self.p = C.zipf_probs(n_items, 0.9)
        self.perm = self.rng.permutation(n_items).astype(np.int64)  # popularity rank != ID

    def batch(self, start: int, stop: int):
        users = user_ids(start, stop)
        items = self.perm[self.rng.choice(self.n_items, size=stop - start, p=self.p)]
        ts = np.arange(start, stop, dtype=np.float64) * 1e-3  # 1 ms per event
        return users, items, ts


# --------------------------------------------------------------------------- #
# child modes
# --------------------------------------------------------------------------- #


def run_stream(args, max_rows: int | None, n_ids: int) -> dict:
    rt, err = C.import_rtrec()
    if rt is None:
        raise SystemExit(f"cannot import rtrec_native: {err}")
    stream = Stream(args.items, seed=args.seed)
    rss_before = rss_bytes()["VmRSS"]
    rec = rt.Recommender(model="mf", dim=args.dim, max_rows=max_rows, num_threads=1, seed=args.seed)
    label = f"max_rows={max_rows:,}" if max_rows else "no cap"
    log(f"[{label}] streaming {n_ids:,} new user IDs in batches of {args.batch:,}")
    points, problems = [], []
    noise = C.NoiseMeter().start()
    seg_secs, seg_events, seg_max, streamed = 0.0, 0, 0.0, 0
    next_mark = args.every

    def check_counts(s, where):
        if max_rows and s["n_users"] > max_rows:
            problems.append(f"{where}: n_users {s['n_users']:,} > max_rows {max_rows:,}")
        if s["n_users"] + s["evicted_users"] != streamed:
            problems.append(f"{where}: n_users + evicted_users = {s['n_users'] + s['evicted_users']:,} "
                            f"!= {streamed:,} IDs streamed")
        if s["evicted_items"]:
            problems.append(f"{where}: {s['evicted_items']:,} items evicted (catalogue {args.items:,} < cap)")

    while streamed < n_ids:
        stop = min(streamed + args.batch, n_ids, next_mark)
        u, i, ts = stream.batch(streamed, stop)
        t0 = time.perf_counter()
        rec.update(u, i, timestamps=ts)
        dt = time.perf_counter() - t0
        seg_secs += dt
        seg_max = max(seg_max, dt)
        seg_events += stop - streamed
        streamed = stop
        s = rec.stats()
        check_counts(s, f"after {streamed:,} IDs")
        if streamed in (next_mark, n_ids):
            r = rss_bytes()
            points.append({
                "ids": streamed, "n_users": s["n_users"], "n_items": s["n_items"],
                "evicted_users": s["evicted_users"], "evicted_items": s["evicted_items"],
                "memory_bytes": s["memory_bytes"], "rss": r["VmRSS"], "hwm": r["VmHWM"],
                "events_per_s": seg_events / seg_secs, "max_batch_s": seg_max,
            })
            log(f"[{label}] {streamed:>11,} IDs  n_users {s['n_users']:>10,}  evicted {s['evicted_users']:>11,}  "
                f"RSS {r['VmRSS'] / MiB:8.0f} MiB  memory_bytes {s['memory_bytes'] / MiB:8.0f} MiB  "
                f"{seg_events / seg_secs / 1e6:.2f} M events/s")
            seg_secs, seg_events, seg_max = 0.0, 0, 0.0
            next_mark += args.every
    out = {"max_rows": max_rows, "rss_before_model": rss_before, "points": points, "problems": problems,
           "noise": noise.stop()}
    if not max_rows:
        return out

    # On-demand eviction: drop every row older than the last `keep` events, then refill.
    keep = args.evict_keep
    s0 = rec.stats()
    t0 = time.perf_counter()
    n_ev = rec.evict(older_than=keep * 1e-3)
    evict_s = time.perf_counter() - t0
    s1 = rec.stats()
    r1 = rss_bytes()
    # users with event time < clock - keep*1ms: all but the last `keep` (+1 at the boundary) events' users
    expected = s0["n_users"] - min(s0["n_users"], keep + 1)
    users_gone = s0["n_users"] - s1["n_users"]
    if abs(users_gone - expected) > 1:  # +-1: float time at the boundary
        problems.append(f"evict(older_than={keep * 1e-3:g}): {users_gone:,} users evicted, expected "
                        f"{expected:,} +- 1")
    if n_ev != (s1["evicted_users"] - s0["evicted_users"]) + (s1["evicted_items"] - s0["evicted_items"]):
        problems.append(f"evict() returned {n_ev:,} but the stats counters moved by "
                        f"{s1['evicted_users'] - s0['evicted_users']:,} users + "
                        f"{s1['evicted_items'] - s0['evicted_items']:,} items")
    log(f"[{label}] evict(older_than={keep * 1e-3:g} s): {n_ev:,} rows in {evict_s:.3f} s, "
        f"n_users {s1['n_users']:,}, RSS {r1['VmRSS'] / MiB:.0f} MiB")
    refill = args.refill
    t0 = time.perf_counter()
    pos = streamed
    while pos < streamed + refill:
        stop = min(pos + args.batch, streamed + refill)
        u, i, ts = stream.batch(pos, stop)
        rec.update(u, i, timestamps=ts)
        pos = stop
    refill_s = time.perf_counter() - t0
    s2 = rec.stats()
    r2 = rss_bytes()
    streamed = pos
    if s2["n_users"] + s2["evicted_users"] != streamed:
        problems.append(f"after refill: n_users + evicted_users = {s2['n_users'] + s2['evicted_users']:,} "
                        f"!= {streamed:,}")
    log(f"[{label}] refill {refill:,} new IDs: n_users {s2['n_users']:,}, RSS {r2['VmRSS'] / MiB:.0f} MiB")
    out["on_demand"] = {
        "older_than": keep * 1e-3, "evicted": n_ev, "evict_s": evict_s,
        "before": {"n_users": s0["n_users"], "n_items": s0["n_items"], "memory_bytes": s0["memory_bytes"],
                   "rss": points[-1]["rss"]},
        "after_evict": {"n_users": s1["n_users"], "n_items": s1["n_items"], "memory_bytes": s1["memory_bytes"],
                        "rss": r1["VmRSS"], "evicted_items": s1["evicted_items"] - s0["evicted_items"]},
        "after_refill": {"n_users": s2["n_users"], "n_items": s2["n_items"], "memory_bytes": s2["memory_bytes"],
                         "rss": r2["VmRSS"], "refill": refill, "events_per_s": refill / refill_s},
    }
    out["problems"] = problems
    return out


def run_per_row(args, dim: int, optimizer: str) -> dict:
    rt, err = C.import_rtrec()
    if rt is None:
        raise SystemExit(f"cannot import rtrec_native: {err}")
    n = args.per_row_users
    rng = np.random.default_rng(args.seed)
    users = user_ids(0, n)
    items = rng.integers(0, 1000, n).astype(np.int64)
    rss0 = rss_bytes()["VmRSS"]
    rec = rt.Recommender(model="mf", dim=dim, optimizer=optimizer, num_threads=1, seed=args.seed)
    for a in range(0, n, args.batch):
        rec.update(users[a:a + args.batch], items[a:a + args.batch])
    s = rec.stats()
    rss1 = rss_bytes()["VmRSS"]
    rows = s["n_users"] + s["n_items"]
    log(f"[per-row dim={dim} {optimizer}] {s['n_users']:,} users + {s['n_items']:,} items: "
        f"memory_bytes {s['memory_bytes'] / rows:.0f} B/row, RSS delta {(rss1 - rss0) / rows:.0f} B/row")
    return {"dim": dim, "optimizer": optimizer, "n_users": s["n_users"], "n_items": s["n_items"],
            "seen_pairs": s["seen_pairs"], "memory_bytes": s["memory_bytes"], "rss_delta": rss1 - rss0}


# --------------------------------------------------------------------------- #
# parent: orchestrate children, print tables
# --------------------------------------------------------------------------- #


def child(args, mode: str, *extra: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode,
           "--ids", str(args.ids), "--max-rows", str(args.max_rows), "--every", str(args.every),
           "--baseline-ids", str(args.baseline_ids), "--batch", str(args.batch), "--items", str(args.items),
           "--dim", str(args.dim), "--per-row-users", str(args.per_row_users), "--evict-keep",
           str(args.evict_keep), "--refill", str(args.refill), "--seed", str(args.seed), *extra]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child {mode} {' '.join(extra)} failed with exit code {res.returncode}")
    return json.loads(res.stdout)


def mib(x) -> str:
    return f"{x / MiB:,.0f} MiB"


def growth_per_million(points, start_ids) -> float:
    """RSS growth, bytes per million IDs, between the checkpoint at start_ids and the last."""
    a = next(p for p in points if p["ids"] >= start_ids)
    b = points[-1]
    return (b["rss"] - a["rss"]) / (b["ids"] - a["ids"]) * 1e6 if b["ids"] > a["ids"] else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", type=int, default=12_000_000, help="distinct user IDs streamed into the capped model")
    p.add_argument("--max-rows", type=int, default=1_000_000)
    p.add_argument("--every", type=int, default=1_000_000, help="IDs between two checkpoints")
    p.add_argument("--baseline-ids", type=int, default=3_000_000, help="IDs streamed into the uncapped model")
    p.add_argument("--batch", type=int, default=50_000, help="events per update call")
    p.add_argument("--items", type=int, default=20_000, help="item catalogue size")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--per-row-users", type=int, default=1_000_000, help="users inserted for the per-row table")
    p.add_argument("--evict-keep", type=int, default=500_000,
                   help="on-demand evict keeps the rows updated by the last this many events")
    p.add_argument("--refill", type=int, default=500_000, help="new IDs streamed after the on-demand eviction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="1M IDs, max_rows 100k: a smoke run")
    p.add_argument("--json", default=None, help="save the results to this file")
    p.add_argument("--wait-quiet", type=float, default=None, metavar="SECONDS",
                   help="wait up to this long for other processes to leave the CPUs idle (default 120, "
                        "0 with --quick)")
    p.add_argument("--mode", default=None, choices=("bounded", "unbounded", "per-row"), help=argparse.SUPPRESS)
    p.add_argument("--per-row-config", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.ids, args.max_rows, args.every, args.baseline_ids = 1_000_000, 100_000, 100_000, 300_000
        args.per_row_users, args.evict_keep, args.refill = 100_000, 50_000, 50_000

    if args.mode == "bounded":
        print(json.dumps(run_stream(args, args.max_rows, args.ids)))
        return 0
    if args.mode == "unbounded":
        print(json.dumps(run_stream(args, None, args.baseline_ids)))
        return 0
    if args.mode == "per-row":
        dim, opt = args.per_row_config.split(",")
        print(json.dumps(run_per_row(args, int(dim), opt)))
        return 0

    rt, err = C.import_rtrec()
    if rt is None:
        print(err)
        return 1
    C.print_env(C.env_report())
    wait = args.wait_quiet if args.wait_quiet is not None else (0.0 if args.quick else 120.0)
    C.wait_quiet(wait)
    sys.stdout.flush()  # before the children write progress to stderr
    t_start = time.perf_counter()
    bounded = child(args, "bounded")
    unbounded = child(args, "unbounded")
    per_row = [child(args, "per-row", "--per-row-config", f"{d},{o}")
               for d in (32, 64) for o in ("sgd", "adagrad")]
    total_s = time.perf_counter() - t_start

    print(f"\nstream: {args.ids:,} events, each a new user ID, items Zipf(0.9) over {args.items:,}; "
          f"dim {args.dim}, BPR, AdaGrad, 1 thread, update batches of {args.batch:,}, 1 ms per event")
    print(f"\n### capped: `Recommender(model='mf', dim={args.dim}, max_rows={args.max_rows:,}, num_threads=1)`\n")
    rows = []
    for pt in bounded["points"]:
        rows.append([f"{pt['ids']:,}", f"{pt['n_users']:,}", f"{pt['evicted_users']:,}", mib(pt["memory_bytes"]),
                     mib(pt["rss"]), f"{pt['events_per_s'] / 1e6:.2f} M", f"{pt['max_batch_s'] * 1e3:.0f} ms"])
    C.print_table(["IDs streamed", "n_users", "evicted_users", "memory_bytes", "RSS", "events/s (segment)",
                   "slowest batch"], rows)
    print(f"\nRSS before the model was built: {mib(bounded['rss_before_model'])}; "
          f"peak RSS (VmHWM): {mib(bounded['points'][-1]['hwm'])}")

    print(f"\n### uncapped baseline: `Recommender(model='mf', dim={args.dim}, num_threads=1)`, same stream\n")
    rows = []
    for pt in unbounded["points"]:
        rows.append([f"{pt['ids']:,}", f"{pt['n_users']:,}", mib(pt["memory_bytes"]), mib(pt["rss"]),
                     f"{pt['events_per_s'] / 1e6:.2f} M"])
    C.print_table(["IDs streamed", "n_users", "memory_bytes", "RSS", "events/s (segment)"], rows)

    warm = 2 * args.max_rows
    bp, up = bounded["points"], unbounded["points"]
    at_warm = next(pt for pt in bp if pt["ids"] >= warm)
    g_b = growth_per_million(bp, warm)
    g_u = growth_per_million(up, up[0]["ids"])
    print("\n### flatness\n")
    C.print_table(["measure", "capped", "uncapped"], [
        [(f"RSS growth per 1M IDs (capped: {at_warm['ids']:,} → {bp[-1]['ids']:,}; "
          f"uncapped: {up[0]['ids']:,} → {up[-1]['ids']:,})"), mib(g_b), mib(g_u)],
        ["growth ratio, capped ÷ uncapped", f"{g_b / g_u:.3f}", "—"],
        [f"RSS at {at_warm['ids']:,} IDs (after warm-up)", mib(at_warm["rss"]), "—"],
        [f"RSS at {bp[-1]['ids']:,} IDs (end)", mib(bp[-1]["rss"]), "—"],
        ["RSS end ÷ RSS after warm-up", f"{bp[-1]['rss'] / at_warm['rss']:.3f}", "—"],
        ["memory_bytes end ÷ after warm-up", f"{bp[-1]['memory_bytes'] / at_warm['memory_bytes']:.3f}", "—"],
        ["throughput, mean of the segments (capped: after warm-up)",
         f"{np.mean([pt['events_per_s'] for pt in bp if pt['ids'] > warm]) / 1e6:.2f} M events/s",
         f"{np.mean([pt['events_per_s'] for pt in up]) / 1e6:.2f} M events/s"],
    ])

    od = bounded["on_demand"]
    print(f"\n### on demand: `rec.evict(older_than={od['older_than']:g})` at the end of the capped stream "
          f"(keeps the last {args.evict_keep:,} events' users), then {od['after_refill']['refill']:,} new IDs\n")
    C.print_table(["state", "n_users", "n_items", "memory_bytes", "RSS"], [
        ["before evict", f"{od['before']['n_users']:,}", f"{od['before']['n_items']:,}",
         mib(od["before"]["memory_bytes"]), mib(od["before"]["rss"])],
        [f"after evict ({od['evicted']:,} rows, {od['evict_s'] * 1e3:.0f} ms)", f"{od['after_evict']['n_users']:,}",
         f"{od['after_evict']['n_items']:,}", mib(od["after_evict"]["memory_bytes"]), mib(od["after_evict"]["rss"])],
        [f"after {od['after_refill']['refill']:,} new IDs ({od['after_refill']['events_per_s'] / 1e6:.2f} M events/s)",
         f"{od['after_refill']['n_users']:,}", f"{od['after_refill']['n_items']:,}",
         mib(od["after_refill"]["memory_bytes"]), mib(od["after_refill"]["rss"])],
    ])

    print(f"\n### memory per row: {args.per_row_users:,} users (one event each) + 1000 items, uncapped\n")
    rows = []
    for r in per_row:
        n = r["n_users"] + r["n_items"]
        payload = r["dim"] * 4 * (2 if r["optimizer"] == "adagrad" else 1)
        rows.append([r["dim"], r["optimizer"], f"{n:,}", f"{payload} B", f"{r['memory_bytes'] / n:.0f} B",
                     f"{r['rss_delta'] / n:.0f} B"])
    C.print_table(["dim", "optimizer", "rows", "vector + optimizer state", "memory_bytes / row",
                   "RSS delta / row"], rows)
    print("(each user row also holds its one seen item; RSS delta includes allocator slack)")

    problems = bounded["problems"] + unbounded["problems"]
    print(f"\nchecks: {'all counts consistent' if not problems else 'PROBLEMS:'}")
    for msg in problems:
        print(f"- {msg}")
    print(f"{C.report_noise(bounded['noise'])} (capped stream)")
    print(f"total {total_s:.0f} s")
    C.dump_json(args.json, {"bounded": bounded, "unbounded": unbounded, "per_row": per_row, "args": vars(args)})
    return 0 if not problems else 2


if __name__ == "__main__":
    raise SystemExit(main())
