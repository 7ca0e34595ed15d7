"""two_tower speed: real-time update latency, fit throughput and top-K, against PyTorch and MF.

The same two_tower model (benchmarks/_torch_two_tower.py is its PyTorch twin: same tower,
skip connection, pooled history, sampled softmax with uniform negatives) is trained on the
same events by both sides:

  update   one event at a time, as a serving process learns: ``rec.update_one(u, i)`` vs
           one PyTorch step (forward, backward, optimizer step) on that event; p50 of
           --events timed calls after a warm-up fit on the first 20% of the stream. MF's
           update_one on the same events is the reference for "as fast as MF".
  fit      epochs over the stream: ``rec.fit`` (Hogwild, --threads threads) vs PyTorch
           minibatch training (batch 1024, torch.set_num_threads(--threads)); events/s.
  top-K    ``recommend(user, k=10)`` over --catalogue items, two_tower vs MF, p50.

PyTorch runs twice: with AdaGrad (the same optimizer as rtrec's default; torch's sparse
AdaGrad path is slow) and with plain SGD (torch's fastest sparse optimizer, the stricter
peer). rtrec and torch alternate in rounds so that machine noise hits both; medians of
--repeats runs. Data: MovieLens ml-latest-small from ../shared when present (IDs and time
order only), else the built-in synthetic stream.

    pip install '.[bench]' torch==2.13.0
    python benchmarks/bench_two_tower_speed.py            # the issue's configuration
    python benchmarks/bench_two_tower_speed.py --defaults # two_tower's own defaults
    python benchmarks/bench_two_tower_speed.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import _common as C
from _common import find_dataset

MOVIELENS = find_dataset("ml-latest-small") / "ratings.csv"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--defaults", action="store_true", help="two_tower's own defaults instead of the issue's setting")
    p.add_argument("--events", type=int, default=3000, help="timed update_one calls per contender")
    p.add_argument("--torch-events", type=int, default=300, help="timed PyTorch single-event steps")
    p.add_argument("--fit-events", type=int, default=20_000, help="events of a PyTorch fit epoch (rtrec: all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--catalogue", type=int, default=100_000, help="items for the top-K comparison")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    C.add_quiet_arg(p)
    return p.parse_args(argv)


def load_stream():
    """(users, items) as dense ints in time order, and where they came from."""
    from rtrec_native import data, datasets

    if MOVIELENS.is_file():
        events, _ = data.load_events(MOVIELENS)
        source = "MovieLens ml-latest-small"
    else:
        events = datasets.synthetic_stream(seed=0)
        source = "synthetic stream (MovieLens not found)"
    order = np.argsort(events.timestamps, kind="stable")
    _, users = np.unique(events.users[order], return_inverse=True)
    _, items = np.unique(events.items[order], return_inverse=True)
    return users.astype(np.int64), items.astype(np.int64), source


def model_params(rt, defaults: bool) -> dict:
    if defaults:
        return {}
    return {"dim": 64, "tower": (128,), "history": 50, "negatives": 16}


def update_latency(rt, model, params, users, items, warm, n, threads):
    """Per-call time of ``update_one`` on n events after a warm-up fit on the first ``warm``."""
    rec = rt.Recommender(model=model, num_threads=threads, seed=0, **params)
    rec.fit(users[:warm], items[:warm], epochs=1)
    uu, ii = users[warm : warm + n].tolist(), items[warm : warm + n].tolist()
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        t0 = pc()
        rec.update_one(uu[k], ii[k])
        out[k] = pc() - t0
    return out


def torch_setup(users, items, params, defaults_tt):
    import torch

    from _torch_two_tower import TorchTwoTower, histories

    dim, tower = params.get("dim", defaults_tt["dim"]), params.get("tower", defaults_tt["tower"])
    history = params.get("history", defaults_tt["history"])
    negatives = params.get("negatives", defaults_tt["negatives"])
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    hist, weights = histories(users, items, history, defaults_tt["recency"], n_items)
    rng = np.random.default_rng(0)
    candidates = np.concatenate([items[:, None], rng.integers(0, n_items, (len(items), negatives))], axis=1)
    tensors = [torch.from_numpy(x) for x in (users, hist, weights, candidates)]
    return lambda: TorchTwoTower(n_users, n_items, dim=dim, tower=tuple(tower)), tensors


def torch_optimizers(model, kind: str, lr: float):
    import torch

    if kind == "adagrad":
        return model.optimizer(lr)
    return [torch.optim.SGD(model.parameters(), lr=lr)]


def torch_step_latency(make, tensors, kind, lr, warm, n):
    import torch

    torch.set_num_threads(1)  # one event: threads only add overhead
    model = make()
    opts = torch_optimizers(model, kind, lr)
    U, H, W, K = tensors
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        e = warm + k
        t0 = pc()
        for o in opts:
            o.zero_grad()
        model.loss(U[e : e + 1], H[e : e + 1], W[e : e + 1], K[e : e + 1]).backward()
        for o in opts:
            o.step()
        out[k] = pc() - t0
    return out


def torch_fit_rate(make, tensors, kind, lr, n_events, threads):
    import torch

    torch.set_num_threads(threads)
    model = make()
    opts = torch_optimizers(model, kind, lr)
    U, H, W, K = tensors
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(U))[:n_events])
    t0 = time.perf_counter()
    for s in range(0, n_events, 1024):
        b = order[s : s + 1024]
        for o in opts:
            o.zero_grad()
        model.loss(U[b], H[b], W[b], K[b]).backward()
        for o in opts:
            o.step()
    return n_events / (time.perf_counter() - t0)


def rtrec_fit_rate(rt, model, params, users, items, epochs, threads):
    rec = rt.Recommender(model=model, num_threads=threads, seed=0, **params)
    t0 = time.perf_counter()
    rec.fit(users, items, epochs=epochs)
    return len(users) * epochs / (time.perf_counter() - t0)


def topk_latency(rt, model, params, n_items, n_calls, threads):
    rng = np.random.default_rng(1)
    n_users = 5000
    users = rng.integers(0, n_users, 20 * n_items // 10)
    items = np.concatenate([np.arange(n_items), rng.integers(0, n_items, len(users) - n_items)])
    users = np.concatenate([rng.integers(0, n_users, n_items), users[n_items:]])
    rec = rt.Recommender(model=model, num_threads=threads, seed=0, **params)
    rec.fit(users, items, epochs=1)
    queries = rng.integers(0, n_users, n_calls).tolist()
    pc = time.perf_counter_ns
    out = np.empty(n_calls, dtype=np.int64)
    for k, u in enumerate(queries):
        t0 = pc()
        rec.recommend(u, k=10)
        out[k] = pc() - t0
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.events, args.torch_events, args.fit_events, args.repeats, args.catalogue = 300, 30, 2048, 1, 20_000
    try:
        import torch  # noqa: F401  (before rtrec_native: its OpenMP starts under the user's settings)
    except ImportError:
        print("bench_two_tower_speed: needs PyTorch: pip install torch==2.13.0", file=sys.stderr)
        return 1
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"bench_two_tower_speed: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    C.wait_quiet(args.wait_quiet)
    meter = C.NoiseMeter().start()
    users, items, source = load_stream()
    params = model_params(rt, args.defaults)
    tt = rt.defaults("two_tower")
    setting = {**{k: tt[k] for k in ("dim", "tower", "history", "negatives", "loss")}, **params}
    warm = len(users) // 5
    n = min(args.events, len(users) - warm)
    make_torch, tensors = torch_setup(users, items, params, tt)
    lr = tt["learning_rate"]

    upd, upd_mf, upd_torch = [], [], {"adagrad": [], "sgd": []}
    fit_tt, fit_mf, fit_torch = [], [], {"adagrad": [], "sgd": []}
    top_tt, top_mf = [], []
    for r in range(args.repeats):
        upd.append(np.median(update_latency(rt, "two_tower", params, users, items, warm, n, args.threads)))
        upd_mf.append(np.median(update_latency(rt, "mf", {}, users, items, warm, n, args.threads)))
        for kind in ("adagrad", "sgd"):
            steps = torch_step_latency(make_torch, tensors, kind, lr, warm, args.torch_events)
            upd_torch[kind].append(np.median(steps))
            fit_torch[kind].append(torch_fit_rate(make_torch, tensors, kind, lr, min(args.fit_events, len(users)),
                                                  args.threads))
        fit_tt.append(rtrec_fit_rate(rt, "two_tower", params, users, items, args.epochs, args.threads))
        fit_mf.append(rtrec_fit_rate(rt, "mf", {}, users, items, args.epochs, args.threads))
        top_tt.append(np.median(topk_latency(rt, "two_tower", params, args.catalogue, 300, args.threads)))
        top_mf.append(np.median(topk_latency(rt, "mf", {}, args.catalogue, 300, args.threads)))
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    noise = meter.stop()
    med = C.median
    C.print_env(C.env_report(extra_modules=("torch",)))
    print(f"data: {source}, {len(users):,} events; two_tower setting {setting}; {args.threads} threads; "
          f"medians of {args.repeats} runs; {C.report_noise(noise)}\n")
    t_u = med(upd)
    rows = [
        ["two_tower update_one p50", C.fmt_us(t_u), "-"],
        ["PyTorch step, AdaGrad", C.fmt_us(med(upd_torch["adagrad"])),
         f"{med(upd_torch['adagrad']) / t_u:.0f}x slower"],
        ["PyTorch step, SGD", C.fmt_us(med(upd_torch["sgd"])), f"{med(upd_torch['sgd']) / t_u:.0f}x slower"],
        ["mf update_one p50 (reference)", C.fmt_us(med(upd_mf)), f"{t_u / med(upd_mf):.1f}x two_tower's cost"],
    ]
    C.print_table(["per event", "time", "vs two_tower"], rows)
    f_tt = med(fit_tt)
    rows = [
        ["two_tower fit", f"{f_tt:,.0f}", "-"],
        ["PyTorch batch 1024, AdaGrad", f"{med(fit_torch['adagrad']):,.0f}",
         f"{f_tt / med(fit_torch['adagrad']):.1f}x"],
        ["PyTorch batch 1024, SGD", f"{med(fit_torch['sgd']):,.0f}", f"{f_tt / med(fit_torch['sgd']):.1f}x"],
        ["mf fit (reference)", f"{med(fit_mf):,.0f}", f"{f_tt / med(fit_mf):.2f}x"],
    ]
    C.print_table(["fit", "events/s", "two_tower's speed-up"], rows)
    rows = [["two_tower recommend k=10", C.fmt_us(med(top_tt)), f"{med(top_tt) / med(top_mf):.2f}x mf's"],
            ["mf recommend k=10", C.fmt_us(med(top_mf)), "-"]]
    C.print_table([f"top-K over {args.catalogue:,} items", "p50", "ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
