"""Benchmark 2: single-event online update latency from Python, rtrec_native vs River.

Each call is timed on its own with time.perf_counter_ns (the timer's own cost is printed and
NOT subtracted). Squared loss, SGD, dim/n_factors 64 on both sides, same learning rate and L2.

Contenders (each with its own model, all fed the same seeded Zipf rating stream):
  - River   `river.reco.BiasedMF.learn_one(user, item, y)`
  - ours    `rec.update_one(user, item, y)`           (scalar fast path)
  - floor   `rtrec_native._core._noop(user, item, y)` (a bound function that does nothing:
            what any per-event call from Python costs at least)
  - ours    `rec.update(users, items, ys)` on numpy batches of --batch events, reported per
            event (call time / batch size): the batch path. (A one-event `update([u], [i], [y])`
            is routed to update_one, so it would only measure that again plus three lists.)

Warm phase: every model first sees the whole stream once, untimed, so timed calls touch known
users/items. Timed phase: the stream again, split into rounds; contenders are interleaved
round by round (rotating order) so machine noise hits all alike. A second timed phase feeds
never-seen user and item IDs on every call (row creation path).
Python ints/floats are passed (lists made with .tolist() beforehand), as a web handler would.

    python benchmarks/bench_update_latency.py            # 50k timed calls per contender
    python benchmarks/bench_update_latency.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import _common as C

NOOP = "no-op bound call _noop(u, i, y)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--calls", type=int, default=50_000, help="timed calls per contender (warm IDs)")
    p.add_argument("--new-calls", type=int, default=20_000, help="timed calls with new IDs each call")
    p.add_argument("--rounds", type=int, default=5, help="interleaving rounds")
    p.add_argument("--batch", type=int, default=1000, help="events per update() call of the batch contender")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2, help="num_threads for our Recommender")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["all", "peers", "ours"], default="all")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="small smoke configuration")
    C.add_quiet_arg(p)
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(calls=3_000, new_calls=1_000, rounds=3, users=1_000, items=500)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- #
# timed loops (kept minimal: the loop body is what a caller would write)
# --------------------------------------------------------------------------- #


def loop_scalar(fn, us, its, ys, out, off):
    pc = time.perf_counter_ns
    for k in range(len(us)):
        u = us[k]
        i = its[k]
        y = ys[k]
        t0 = pc()
        fn(u, i, y)
        t1 = pc()
        out[off + k] = t1 - t0


def loop_batch(fn, us, its, ys, out, off, batch):
    """One update() call per `batch` events (numpy arrays, sliced outside the timed call);
    each event of a batch gets the call's time divided by the batch size."""
    pc = time.perf_counter_ns
    us, its, ys = np.asarray(us, dtype=np.int64), np.asarray(its, dtype=np.int64), np.asarray(ys, dtype=np.float32)
    for lo in range(0, len(us), batch):
        u, i, y = us[lo : lo + batch], its[lo : lo + batch], ys[lo : lo + batch]
        t0 = pc()
        fn(u, i, y)
        t1 = pc()
        out[off + lo : off + lo + len(u)] = (t1 - t0) / len(u)


def untimed(fn, us, its, ys, batch):
    if batch:
        fn(np.asarray(us, dtype=np.int64), np.asarray(its, dtype=np.int64), np.asarray(ys, dtype=np.float32))
    else:
        for u, i, y in zip(us, its, ys, strict=True):
            fn(u, i, y)


# --------------------------------------------------------------------------- #
# contenders
# --------------------------------------------------------------------------- #


def make_river(args):
    from river import optim, reco  # noqa: PLC0415

    m = reco.BiasedMF(
        n_factors=args.dim,
        bias_optimizer=optim.SGD(args.lr),
        latent_optimizer=optim.SGD(args.lr),
        loss=optim.losses.Squared(),
        l2_bias=args.l2,
        l2_latent=args.l2,
        seed=args.seed,
    )
    return m.learn_one, 0, m


def make_ours(rt, args, batch):
    """Our model and the function timed: update_one (batch 0) or update on batches."""
    rec = rt.Recommender(model="mf",
        dim=args.dim, loss="squared", optimizer="sgd", learning_rate=args.lr, l2=args.l2,
        num_threads=args.threads, seed=args.seed,
    )
    return (rec.update if batch else rec.update_one), batch, rec


def sanity_ours(rt, args, ev_u, ev_i, ev_y):
    """Checks on our update path (not timed): (1) update_one event by event and update on
    one batch of the same events, from the same seed, give the same model (the batch is
    applied in order); (2) one update moves the pair's score toward y."""
    out = {}
    n = min(2000, len(ev_u))
    a = rt.Recommender(model="mf", dim=args.dim, loss="squared", optimizer="sgd", learning_rate=args.lr,
                       l2=args.l2, num_threads=1, seed=args.seed)
    b = rt.Recommender(model="mf", dim=args.dim, loss="squared", optimizer="sgd", learning_rate=args.lr,
                       l2=args.l2, num_threads=1, seed=args.seed)
    for k in range(n):
        a.update_one(ev_u[k], ev_i[k], ev_y[k])
    pu = np.asarray(ev_u[:n], dtype=np.int64)
    pi = np.asarray(ev_i[:n], dtype=np.int64)
    b.update(pu, pi, np.asarray(ev_y[:n], dtype=np.float32))
    sa = np.asarray(a.predict(pu, pi), dtype=np.float64)
    sb = np.asarray(b.predict(pu, pi), dtype=np.float64)
    out["update_one_vs_batch_max_abs_diff"] = float(np.max(np.abs(sa - sb)))
    out["finite"] = bool(np.isfinite(sa).all() and np.isfinite(sb).all())
    u, i = ev_u[0], ev_i[0]
    before = float(a.predict(np.array([u]), np.array([i]))[0])
    target = before + 2.0
    a.update_one(u, i, target)
    after = float(a.predict(np.array([u]), np.array([i]))[0])
    out["one_update_moves_toward_label"] = bool(after > before)
    out["one_update_before_after_target"] = (before, after, target)
    return out


def summarize(ns):
    ns = np.asarray(ns, dtype=np.float64)
    return {"n": len(ns), "p50_ns": C.percentile(ns, 50), "p90_ns": C.percentile(ns, 90),
            "p99_ns": C.percentile(ns, 99), "mean_ns": float(ns.mean()) if len(ns) else float("nan")}


def main(argv=None):
    args = parse_args(argv)
    rt, rt_err = (None, "skipped (--only peers)") if args.only == "peers" else C.import_rtrec()
    run_peers = args.only in ("all", "peers")
    env = C.env_report(["river"] + (["rtrec_native"] if rt else []))
    C.print_env(env)
    env["busy_before"] = C.wait_quiet(args.wait_quiet)
    floor = C.timer_floor_ns()
    print(f"## config\nusers={args.users} items={args.items} calls={args.calls} "
          f"new_calls={args.new_calls} rounds={args.rounds} dim={args.dim} lr={args.lr} "
          f"l2={args.l2} our num_threads={args.threads}; perf_counter_ns floor p50 = "
          f"{floor:.0f} ns (not subtracted); gc enabled\n")

    ev = C.make_events(args.users, args.items, args.calls, seed=args.seed, dedupe=False,
                       ratings=True)
    us, its, ys = ev.users.tolist(), ev.items.tolist(), ev.labels.astype(float).tolist()
    base = 10 ** 12  # never-seen IDs for the cold phase
    new_us = list(range(base, base + args.new_calls))
    new_its = list(range(base, base + args.new_calls))
    new_ys = [ys[k % len(ys)] for k in range(args.new_calls)]

    contenders = []  # (name, fn, batch (0: one event per call), model, note)
    if run_peers:
        fn, b, m = make_river(args)
        contenders.append(("River BiasedMF.learn_one(u, i, y)", fn, b, m, None))
    if rt is not None:
        fn, b, m = make_ours(rt, args, 0)
        contenders.append(("rtrec_native update_one(u, i, y)", fn, b, m, None))
        contenders.append((NOOP, rt._core._noop, 0, None, "the floor: a bound call that does nothing"))
        fn, b, m = make_ours(rt, args, args.batch)
        contenders.append((f"rtrec_native update(batch of {args.batch}), per event", fn, b, m,
                           "call time / batch size"))

    warm = {}
    cold = {}
    errors = {}
    for name, fn, lf, _m, _note in contenders:
        t0 = time.perf_counter()
        try:
            untimed(fn, us, its, ys, lf)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
        print(f"  warm-up pass {name}: {time.perf_counter() - t0:.2f} s")
        warm[name] = np.zeros(args.calls, dtype=np.int64)
        cold[name] = np.zeros(args.new_calls, dtype=np.int64)

    def phase(store, pu, pi, py, label):
        n = len(pu)
        bounds = np.linspace(0, n, args.rounds + 1).astype(int)
        live = [c for c in contenders if c[0] not in errors]
        for r in range(args.rounds):
            lo, hi = bounds[r], bounds[r + 1]
            k = r % max(len(live), 1)
            for name, fn, lf, _m, _note in live[k:] + live[:k]:
                if name in errors:
                    continue
                gc.collect()
                try:
                    if lf:
                        loop_batch(fn, pu[lo:hi], pi[lo:hi], py[lo:hi], store[name], lo, lf)
                    else:
                        loop_scalar(fn, pu[lo:hi], pi[lo:hi], py[lo:hi], store[name], lo)
                except Exception as exc:
                    errors[name] = f"{label}: {type(exc).__name__}: {exc}"

    meter = C.NoiseMeter().start()
    phase(warm, us, its, ys, "warm")
    phase(cold, new_us, new_its, new_ys, "new-ids")
    noise = meter.stop()

    summary = {}
    for name, *_ in contenders:
        summary[name] = {"warm": summarize(warm[name]), "new_ids": summarize(cold[name])}
    river_name = contenders[0][0] if run_peers else None
    rows = []
    for name, _fn, _lf, _m, note in contenders:
        if name in errors:
            rows.append([name, "—", "—", "—", "—", "—", f"error: {errors[name]}"])
            continue
        w, c = summary[name]["warm"], summary[name]["new_ids"]
        ratio = "—"
        if river_name and name != river_name and river_name not in errors:
            r = summary[river_name]["warm"]["p50_ns"] / w["p50_ns"]
            summary[name]["river_p50_over_ours"] = r
            ratio = C.fmt_ratio(r)
        rows.append([name, C.fmt_us(w["p50_ns"]), C.fmt_us(w["p99_ns"]), C.fmt_us(c["p50_ns"]),
                     C.fmt_us(c["p99_ns"]), ratio, note or ""])
    if rt is None:
        rows.append(["rtrec_native update_one(u, i, y)", C.pending(rt_err), "—", "—", "—", "—", ""])

    print(f"\n## single-event update latency (known IDs: {args.calls} calls; new IDs: "
          f"{args.new_calls} calls; dim {args.dim}, squared loss, SGD)")
    C.print_table(["call", "p50", "p99", "p50 new IDs", "p99 new IDs", "River p50 / this",
                   "note"], rows)
    print("target (issue 2): ours p50 <= 1.5 µs on known IDs")
    ours, floor_name = "rtrec_native update_one(u, i, y)", NOOP
    if ours in summary and floor_name in summary and ours not in errors and floor_name not in errors:
        over = summary[ours]["warm"]["p50_ns"] / summary[floor_name]["warm"]["p50_ns"]
        summary[ours]["p50_over_floor"] = over
        print(f"update_one p50 / no-op bound call p50: {over:.2f}x (issue 10: within 2x)")
    print(C.report_noise(noise))

    sanity = None
    if rt is not None:
        try:
            sanity = sanity_ours(rt, args, us, its, ys)
        except Exception as exc:
            sanity = f"sanity check failed: {type(exc).__name__}: {exc}"
        print(f"\nrtrec_native sanity: {sanity}")
        for name, _fn, _lf, m, _note in contenders:
            if name.startswith("rtrec_native"):
                try:
                    print(f"stats() [{name}]: {dict(m.stats())}")
                except Exception as exc:
                    print(f"stats() [{name}] failed: {exc!r}")
    C.dump_json(args.json, {"bench": "update_latency", "config": vars(args), "env": env,
                            "timer_floor_ns": floor, "other_load_during": noise,
                            "results": summary, "errors": errors,
                            "sanity": sanity, "ours_pending": None if rt else rt_err})


if __name__ == "__main__":
    main()
