"""Benchmark 1: BPR `fit` throughput (events/s), rtrec_native vs implicit's CPU BPR.

Same seeded Zipf data, same factors/dim, epochs, learning rate, L2 and thread count.
Timed region: the `fit` call only (implicit's CSR matrix is built beforehand; our fit gets
the raw int64 ID arrays, so ID hashing/row creation is inside our timed region).
events/s = training events x epochs / seconds; median over repeats, contenders
interleaved (rotating order) so machine noise hits all of them alike.
A held-out AUC (one event per sampled user vs one random unseen item) checks that both
sides actually learn; a popularity-only AUC is printed as the bar to clear.

    python benchmarks/bench_fit.py            # full: 200k users x 50k items x 5M events
    python benchmarks/bench_fit.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import gc
import sys

import numpy as np

import _common as C


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--events", type=int, default=5_000_000, help="distinct (user, item) training pairs")
    p.add_argument("--test", type=int, default=20_000, help="held-out events (one per user) for AUC")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["all", "peers", "ours"], default="all")
    p.add_argument("--no-warm-refit", dest="warm_refit", action="store_false",
                   help="skip the diagnostic second fit() of our model")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    p.add_argument("--quick", action="store_true", help="small smoke configuration")
    C.add_quiet_arg(p)
    # --quick changes the defaults only; explicit size flags still win
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(users=20_000, items=5_000, events=200_000, test=2_000, epochs=10, repeats=2)
    return p.parse_args(argv)


OURS_POP = "rtrec_native BPR sgd, negative_sampling='popularity'"


def implicit_fit(csr, args, rep, verify, evaluate):
    from implicit.cpu.bpr import BayesianPersonalizedRanking  # noqa: PLC0415

    model = BayesianPersonalizedRanking(
        factors=args.dim,
        learning_rate=args.lr,
        regularization=args.l2,
        iterations=args.epochs,
        num_threads=args.threads,
        verify_negative_samples=verify,
        random_state=args.seed + rep,
    )
    wall, cpu, _ = C.time_once_cpu(model.fit, csr, show_progress=False)
    secs = (wall, cpu)

    def score(u, i):
        return np.einsum("ij,ij->i", model.user_factors[u], model.item_factors[i])

    return secs, evaluate(score), {}


def ours_fit(rt, users, items, args, rep, evaluate, refit=True, **extra_params):
    rec = rt.Recommender(
        **extra_params,
        dim=args.dim,
        loss="bpr",
        optimizer="sgd",
        learning_rate=args.lr,
        l2=args.l2,
        negatives=1,
        num_threads=args.threads,
        seed=args.seed + rep,
    )
    wall, cpu, ret = C.time_once_cpu(rec.fit, users, items, epochs=args.epochs)
    secs = (wall, cpu)
    extra = {}

    def score(u, i):
        return np.asarray(rec.predict(u, i), dtype=np.float64)

    quality = evaluate(score)
    if args.warm_refit and refit:
        # diagnostic: the same fit() again on the now-populated model (IDs known, seen pairs
        # recorded), to separate fit's per-call pre-pass from the per-epoch SGD work
        extra["refit_secs"], _ = C.time_once(rec.fit, users, items, epochs=args.epochs)
    if ret is not rec:
        extra["note"] = f"fit returned {type(ret).__name__}, not self"
    try:
        extra["stats"] = dict(rec.stats())
    except Exception as exc:  # report, don't die
        extra["stats"] = f"stats() failed: {exc!r}"
    return secs, quality, extra


def implicit_skip_rate(csr, n=1_000_000, seed=0):
    """Fraction of implicit's (positive, negative) samples that verify_negative_samples
    rejects: implicit draws both as uniform indices into the nnz array, i.e. the negative is
    popularity-weighted, and a rejected sample is skipped (not redrawn)."""
    rng = np.random.default_rng(seed)
    nnz = csr.nnz
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    li = rng.integers(nnz, size=n)
    di = rng.integers(nnz, size=n)
    u = rows[li]
    neg = csr.indices[di]
    keys = np.sort(rows.astype(np.int64) * csr.shape[1] + csr.indices)
    q = u.astype(np.int64) * csr.shape[1] + neg
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return float(np.mean(keys[pos] == q))


def main(argv=None):
    args = parse_args(argv)
    run_peers = args.only in ("all", "peers")
    if run_peers:
        # before rtrec_native (see C.import_rtrec); implicit's BPR loads the system libgomp,
        # which our extension shares, so both run under the user's OMP_WAIT_POLICY here
        import implicit.cpu.bpr  # noqa: F401, PLC0415
    rt, rt_err = (None, "skipped (--only peers)") if args.only == "peers" else C.import_rtrec()
    mods = ["scipy", "implicit", "threadpoolctl"]
    env = C.env_report(mods + (["rtrec_native"] if rt else []))
    C.print_env(env)
    env["busy_before"] = C.wait_quiet(args.wait_quiet)

    print(
        f"## config\nusers={args.users} items={args.items} train_events={args.events} "
        f"(distinct pairs) test={args.test} dim={args.dim} epochs={args.epochs} "
        f"repeats={args.repeats} threads={args.threads} lr={args.lr} l2={args.l2} seed={args.seed}\n"
    )
    ev = C.make_events(args.users, args.items, args.events + args.test, seed=args.seed)
    train_mask, test_idx = C.split_holdout(ev, args.test, seed=args.seed)
    # exactly args.events training events: drop surplus if fewer users were eligible
    train_idx = np.flatnonzero(train_mask)[: args.events]
    tr_u = np.ascontiguousarray(ev.users[train_idx], dtype=np.int64)
    tr_i = np.ascontiguousarray(ev.items[train_idx], dtype=np.int64)
    te_u = ev.users[test_idx]
    te_pos = ev.items[test_idx]
    train_keys = np.sort(tr_u * args.items + tr_i)
    n_train = len(tr_u)
    pop = np.bincount(tr_i, minlength=args.items).astype(np.float64)
    # two negative samplers: uniform over items (popularity alone scores high) and
    # popularity-weighted (popularity alone scores ~0.5: only learned structure helps)
    te_neg = C.sample_negatives(te_u, args.items, train_keys, seed=args.seed)
    te_negp = C.sample_negatives(te_u, args.items, train_keys, seed=args.seed + 1,
                                 p=pop / pop.sum())
    pop_auc = C.auc_from_scores(pop[te_pos], pop[te_neg])
    pop_aucp = C.auc_from_scores(pop[te_pos], pop[te_negp])
    print(
        f"data: {n_train} training events, {len(np.unique(tr_u))} users, "
        f"{len(np.unique(tr_i))} items with events; {len(te_u)} held-out; "
        f"popularity-only AUC = {pop_auc:.4f} (uniform negatives), "
        f"{pop_aucp:.4f} (popularity-weighted negatives)\n"
    )

    contenders = []
    csr = None
    if run_peers:
        import scipy.sparse as sp  # noqa: PLC0415

        csr = sp.csr_matrix(
            (np.ones(n_train, dtype=np.float32), (tr_u, tr_i)), shape=(args.users, args.items)
        )
        csr.sort_indices()
        assert csr.nnz == n_train, "pairs are deduplicated, so nnz must equal the event count"
        skip = implicit_skip_rate(csr, seed=args.seed)
        print(
            f"implicit: negatives are drawn popularity-weighted (uniform over nnz); with "
            f"verify_negative_samples=True about {100 * skip:.2f}% of samples are skipped\n"
        )
        contenders.append(
            ("implicit BPR (default, verify_negative_samples=True)",
             lambda rep, ev_: implicit_fit(csr, args, rep, True, ev_))
        )
        contenders.append(
            ("implicit BPR (verify_negative_samples=False)",
             lambda rep, ev_: implicit_fit(csr, args, rep, False, ev_))
        )
    if rt is not None:
        contenders.append(
            ("rtrec_native BPR sgd", lambda rep, ev_: ours_fit(rt, tr_u, tr_i, args, rep, ev_))
        )
        import inspect  # noqa: PLC0415

        if "negative_sampling" in inspect.signature(rt.Recommender).parameters:
            # like implicit: popularity-weighted negatives (an optional setting of ours)
            contenders.append(
                (OURS_POP, lambda rep, ev_: ours_fit(rt, tr_u, tr_i, args, rep, ev_, refit=False,
                                                     negative_sampling="popularity"))
            )

    def evaluate(score):
        s_pos = score(te_u, te_pos)
        return (C.auc_from_scores(s_pos, score(te_u, te_neg)),
                C.auc_from_scores(s_pos, score(te_u, te_negp)))

    results = {name: {"secs": [], "cpu": [], "auc": [], "aucp": [], "extra": None, "error": None}
               for name, _ in contenders}
    meter = C.NoiseMeter().start()
    for rep in range(args.repeats):
        k = rep % max(len(contenders), 1)
        for name, fn in contenders[k:] + contenders[:k]:
            r = results[name]
            if r["error"]:
                continue
            gc.collect()
            try:
                (secs, cpu), (auc, aucp), extra = fn(rep, evaluate)
            except Exception as exc:
                r["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  [{name}] rep {rep}: FAILED {r['error']}", file=sys.stderr)
                continue
            r["secs"].append(secs)
            r["cpu"].append(cpu)
            if "refit_secs" in extra:
                r.setdefault("refit_secs", []).append(extra["refit_secs"])
            r["auc"].append(auc)
            r["aucp"].append(aucp)
            r["extra"] = extra
            print(
                f"  rep {rep}: {name}: {secs:.2f} s (CPU {cpu:.2f} s), "
                f"{n_train * args.epochs / secs / 1e6:.2f} M events/s, "
                f"AUC {auc:.4f} / {aucp:.4f}"
                + (f"; 2nd fit on same model {extra['refit_secs']:.2f} s"
                   if "refit_secs" in extra else "")
            )
    noise = meter.stop()
    print(f"\n{C.report_noise(noise)}\n")

    rows = []
    summary = {}
    for name, _ in contenders:
        r = results[name]
        if r["error"] and not r["secs"]:
            rows.append([name, "—", "—", "—", "—", "—", "—", f"error: {r['error']}"])
            continue
        med = C.median(r["secs"])
        eps = n_train * args.epochs / med
        best = n_train * args.epochs / min(r["secs"])
        cpu_eps = n_train * args.epochs / C.median(r["cpu"])
        summary[name] = {"secs_median": med, "events_per_s": eps, "events_per_s_best": best,
                         "events_per_cpu_s": cpu_eps, "cpu_secs": r["cpu"],
                         "auc_uniform_neg_median": C.median(r["auc"]),
                         "auc_pop_neg_median": C.median(r["aucp"]),
                         "secs": r["secs"], "auc_uniform_neg": r["auc"], "auc_pop_neg": r["aucp"]}
        rows.append([name, f"{med:.2f} s", C.fmt_num(eps), C.fmt_num(best), C.fmt_num(cpu_eps),
                     f"{C.median(r['auc']):.4f}", f"{C.median(r['aucp']):.4f}", ""])
    ours_r = results.get("rtrec_native BPR sgd")
    if ours_r and ours_r.get("refit_secs"):
        rmed = C.median(ours_r["refit_secs"])
        name = "rtrec_native, 2nd fit() on the fitted model (diagnostic)"
        summary[name] = {"secs_median": rmed, "events_per_s": n_train * args.epochs / rmed,
                         "secs": ours_r["refit_secs"]}
        rows.append([name, f"{rmed:.2f} s", C.fmt_num(n_train * args.epochs / rmed),
                     C.fmt_num(n_train * args.epochs / min(ours_r["refit_secs"])), "—", "—", "—",
                     "rows exist, seen pairs recorded"])
    rows.append(["popularity only (no training)", "—", "—", "—", "—", f"{pop_auc:.4f}",
                 f"{pop_aucp:.4f}", ""])
    if rt is None:
        rows.append(["rtrec_native BPR sgd", "—", C.pending(rt_err), "—", "—", "—", "—", ""])

    ours = summary.get("rtrec_native BPR sgd")
    for name in list(summary):
        if ours and name.startswith("implicit"):
            summary[name]["ours_over_peer"] = ours["events_per_s"] / summary[name]["events_per_s"]
            summary[name]["ours_over_peer_best"] = (ours["events_per_s_best"]
                                                    / summary[name]["events_per_s_best"])
            summary[name]["ours_over_peer_cpu"] = (ours["events_per_cpu_s"]
                                                   / summary[name]["events_per_cpu_s"])
    pop_variant = summary.get(OURS_POP)
    if pop_variant:
        for name in list(summary):
            if name.startswith("implicit"):
                summary[name]["ours_pop_over_peer"] = (pop_variant["events_per_s"]
                                                       / summary[name]["events_per_s"])
                summary[name]["ours_pop_over_peer_cpu"] = (pop_variant["events_per_cpu_s"]
                                                           / summary[name]["events_per_cpu_s"])
    for row in rows:
        s = summary.get(row[0])
        row.insert(7, " / ".join(C.fmt_ratio(s[k]) for k in
                                 ("ours_over_peer", "ours_over_peer_best", "ours_over_peer_cpu"))
                   if s and "ours_over_peer" in s else "—")
        row.insert(8, " / ".join(C.fmt_ratio(s[k]) for k in
                                 ("ours_pop_over_peer", "ours_pop_over_peer_cpu"))
                   if s and "ours_pop_over_peer" in s else "—")

    print(f"## fit throughput ({n_train} events x {args.epochs} epochs, median of "
          f"{args.repeats}, {args.threads} threads)")
    C.print_table(
        ["contender", "fit time (median)", "events/s (median)", "events/s (best)",
         "events/CPU-s", "AUC (unif. neg)", "AUC (pop. neg)",
         "ours / this (median / best / CPU)", "ours popularity-neg. / this (median / CPU)", "note"],
        rows
    )
    if ours is not None:
        extra = results["rtrec_native BPR sgd"]["extra"] or {}
        print(f"\nrtrec_native stats() after last fit: {extra.get('stats')}")
        if extra.get("note"):
            print(f"note: {extra['note']}")
    C.dump_json(args.json, {"bench": "fit", "config": vars(args), "env": env,
                            "n_train": n_train, "other_load_during": noise,
                            "popularity_auc_uniform_neg": pop_auc,
                            "popularity_auc_pop_neg": pop_aucp,
                            "results": summary,
                            "errors": {k: v["error"] for k, v in results.items() if v["error"]},
                            "ours_pending": None if rt else rt_err})


if __name__ == "__main__":
    main()
