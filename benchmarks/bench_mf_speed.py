"""MF speed on the peers' own ground: fit from arrays against implicit's BPR (all setup
included on both sides), the fixed cost of a call on a warm model, and update(batch)
against an update_one loop.

1. fit: BPR, dim 64, the same seeded Zipf data (bench_fit's generator), same epochs and
   threads. Wall time from int64 ID arrays to a trained model: ours is Recommender(model="mf") +
   fit(users, items); implicit's is building the CSR matrix + BayesianPersonalizedRanking
   .fit. Ours with SGD and with AdaGrad (row-wise), implicit with its defaults otherwise.
   Contenders interleaved (rotating order), median over repeats.
2. per-call tax: on the fitted model, fit(events, epochs=1) and fit(events, epochs=1 + k)
   again; the tax is t(1) - (t(1 + k) - t(1)) / k, the call's cost beyond its epochs, as a
   fraction of one epoch (medians over repeats).
3. update: a warm model learns --update-events new events (in order) through update(batch)
   in batches of --batch, and the same events through an update_one loop (Python ints),
   each on its own copy of the fitted model; events/s of each.

    python benchmarks/bench_mf_speed.py            # 200k users x 50k items x 5M events
    python benchmarks/bench_mf_speed.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

import _common as C


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tax-epochs", type=int, default=2, help="k: the tax compares fit(1 epoch) with fit(1 + k)")
    p.add_argument("--update-events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], choices=["fit", "tax", "update"])
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(users=20_000, items=5_000, events=300_000, repeats=2, update_events=20_000, batch=1000)
    return p.parse_args(argv)


def fit_implicit(users, items, args, rep):
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    t0 = time.perf_counter()
    csr = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(args.users, args.items))
    model = BayesianPersonalizedRanking(factors=args.dim, iterations=args.epochs, num_threads=args.threads,
                                        random_state=args.seed + rep)
    model.fit(csr, show_progress=False)
    return time.perf_counter() - t0


def fit_ours(rt, users, items, args, rep, optimizer):
    t0 = time.perf_counter()
    rec = rt.Recommender(model="mf",
                         dim=args.dim, loss="bpr", optimizer=optimizer, num_threads=args.threads, seed=args.seed + rep)
    rec.fit(users, items, epochs=args.epochs)
    return time.perf_counter() - t0, rec


def bench_fit(rt, users, items, args):
    names = ["implicit BPR", "rtrec BPR sgd", "rtrec BPR adagrad"]
    secs = {n: [] for n in names}
    last = None
    for rep in range(args.repeats):
        order = names[rep % 3:] + names[:rep % 3]
        for name in order:
            gc.collect()
            if name == "implicit BPR":
                s = fit_implicit(users, items, args, rep)
            else:
                s, rec = fit_ours(rt, users, items, args, rep, name.rsplit(" ", 1)[1])
                if name.endswith("adagrad"):
                    last = rec
            secs[name].append(s)
            print(f"  rep {rep}: {name}: {s:.2f} s", file=sys.stderr, flush=True)
    base = C.median(secs["implicit BPR"])
    rows = [[n, f"{C.median(secs[n]):.2f} s", f"{len(users) * args.epochs / C.median(secs[n]) / 1e6:.2f} M",
             f"{base / C.median(secs[n]):.2f}x"] for n in names]
    return rows, {n: secs[n] for n in names}, last


def bench_tax(rec, users, items, args):
    k = args.tax_epochs
    one, more = [], []
    for _ in range(args.repeats):
        for epochs, out in ((1, one), (1 + k, more)):
            gc.collect()
            t0 = time.perf_counter()
            rec.fit(users, items, epochs=epochs)
            out.append(time.perf_counter() - t0)
    t1, tk = C.median(one), C.median(more)
    epoch = (tk - t1) / k
    tax = t1 - epoch
    return {"fit_1_epoch_s": t1, f"fit_{1 + k}_epochs_s": tk, "epoch_s": epoch, "tax_s": tax,
            "tax_over_epoch": tax / epoch, "one": one, "more": more}


def bench_update(rt, rec_factory, args):
    rng = np.random.default_rng(args.seed + 99)
    ev = C.make_events(args.users, args.items, args.update_events, seed=args.seed + 1, dedupe=False)
    users, items = ev.users.astype(np.int64), ev.items.astype(np.int64)
    u_list, i_list = users.tolist(), items.tolist()
    del rng
    out = {}
    for name in ("update(batch)", "update_one loop", "update(batch)", "update_one loop"):
        rec = rec_factory()
        gc.collect()
        t0 = time.perf_counter()
        if name == "update(batch)":
            for lo in range(0, len(users), args.batch):
                rec.update(users[lo:lo + args.batch], items[lo:lo + args.batch])
        else:
            one = rec.update_one
            for u, i in zip(u_list, i_list, strict=True):
                one(u, i)
        out.setdefault(name, []).append(len(users) / (time.perf_counter() - t0))
    return {name: C.median(v) for name, v in out.items()}, out


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import implicit.cpu.bpr  # noqa: F401  (before rtrec_native, see _common.import_rtrec)
    except ImportError:
        print("bench_mf_speed: needs implicit: pip install '.[bench]'", file=sys.stderr)
        return 1
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"bench_mf_speed: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    C.print_env(C.env_report(extra_modules=("implicit", "scipy")))
    ev = C.make_events(args.users, args.items, args.events, seed=args.seed)
    users, items = ev.users.astype(np.int64), ev.items.astype(np.int64)
    print(f"## config\nusers={args.users} items={args.items} events={len(users)} dim={args.dim} "
          f"epochs={args.epochs} threads={args.threads} repeats={args.repeats}\n")
    result = {"config": vars(args)}
    meter = C.NoiseMeter().start()
    rec = None
    if "fit" not in args.skip:
        rows, secs, rec = bench_fit(rt, users, items, args)
        print(f"## fit from arrays, all setup included ({args.epochs} epochs, median of {args.repeats})")
        C.print_table(["contender", "wall time", "events x epochs / s", "implicit time / this"], rows)
        result["fit"] = secs
    if "tax" not in args.skip:
        if rec is None:
            _, rec = fit_ours(rt, users, items, args, 0, "adagrad")
        tax = bench_tax(rec, users, items, args)
        print(f"\n## per-call tax on the warm model (defaults' optimizer, same {len(users):,} events again)")
        C.print_table(["fit(1 epoch)", f"fit({1 + args.tax_epochs} epochs)", "one epoch", "tax beyond the epochs",
                       "tax / epoch"],
                      [[f"{tax['fit_1_epoch_s']:.2f} s", f"{tax[f'fit_{1 + args.tax_epochs}_epochs_s']:.2f} s",
                        f"{tax['epoch_s']:.2f} s", f"{tax['tax_s']:.2f} s", f"{tax['tax_over_epoch']:.2f}"]])
        result["tax"] = tax
    if "update" not in args.skip:
        small_u, small_i = users[:200_000], items[:200_000]

        def factory():
            return rt.Recommender(model="mf", dim=args.dim, loss="bpr", num_threads=args.threads, seed=args.seed).fit(
                small_u, small_i, epochs=1)

        med, raw = bench_update(rt, factory, args)
        print(f"\n## update on a warm model, {args.update_events:,} events in order (batches of {args.batch:,})")
        C.print_table(["path", "events/s", "vs update_one loop"],
                      [[n, f"{v:,.0f}", f"{v / med['update_one loop']:.2f}x"] for n, v in med.items()])
        result["update"] = raw
    noise = meter.stop()
    print(f"\n{C.report_noise(noise)}")
    C.dump_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
