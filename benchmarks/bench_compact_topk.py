"""retrieval="compact" against retrieval="exact" and faiss IndexFlatIP, on trained vectors.

Models (dim 64) are trained on a Zipf stream in which every item has events, once per mode
with one thread and one seed, so both modes hold the same vectors and every difference is
retrieval's. All ratios come from this run; times are medians of per-round medians, the
contenders interleaved round by round.

  recall      recall@10 and exact top-10 set equality of recommend over --recall-users users,
              both families; and the re-rank depth curve: the share of those users whose
              exact top 10 lies within the best R by the int8 scores (numpy replay of the
              core's quantisation), which is how the depth (max(64, 4k)) was chosen
  1 query     recommend(u, 10), --items items: exact 1 thread, compact 1 and 2 threads,
              faiss IndexFlatIP (item vectors with their bias as an extra dimension) 1 thread
  10M         compact, 1 thread, --big-items items (absolute ms and the ratio to the 1M time)
  batch       recommend_batch of 1,000 users, exact vs compact, 2 threads
  memory      shadow bytes per item (stats()["compact_bytes"] / n_items) vs the float table
  update_one  p50 per mode, both families, the same events for both
  bandwidth   a plain streaming read (numpy float32 dot of a 512 MiB array, 1 thread) and the
              1M time against reading the shadow once at that rate

    python benchmarks/bench_compact_topk.py            # 1M and 10M items (~7 min; the 10M model takes GBs)
    python benchmarks/bench_compact_topk.py --quick    # smoke run (100k items)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the bandwidth read and the depth replay: 1 thread

import numpy as np

import _common as C

try:
    import faiss
except ImportError:  # pragma: no cover - optional peer
    faiss = None

K = 10
DEPTHS = (10, 12, 14, 16, 20, 32, 64, 128)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--big-items", type=int, default=10_000_000, help="0: skip the 10M run")
    p.add_argument("--tt-items", type=int, default=200_000, help="two_tower catalogue (training is slower)")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--recall-users", type=int, default=1_000)
    p.add_argument("--queries", type=int, default=40, help="timed queries per contender per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--update-events", type=int, default=5_000, help="update_one calls per mode per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    C.add_quiet_arg(p)
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(items=100_000, big_items=0, tt_items=20_000, users=5_000, recall_users=200, queries=20,
                       rounds=3, update_events=1_000)
    return p.parse_args(argv)


def stream(n_items, n_users, n_events, seed):
    """Zipf(1.1) item popularity over a random permutation; every item appears at least once."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    items = rng.permutation(n_items)[(rng.zipf(1.1, n_events) - 1) % n_items]
    items[:n_items] = rng.permutation(n_items)
    return users, items


def train(rt, family, mode, n_items, args, events_per_item=3, epochs=None):
    """mf: 2 epochs over 3 events per item; two_tower: 1 epoch (its default tower etc.)."""
    users, items = stream(n_items, args.users, events_per_item * n_items, args.seed)
    rec = rt.Recommender(family, dim=64, seed=1, num_threads=1, retrieval=mode)
    rec.fit(users, items, epochs=epochs or (2 if family == "mf" else 1))
    return rec


def reload(rt, rec, threads):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.rtrec")
        rec.save(path)
        return rt.Recommender.load(path, num_threads=threads)


def recall(exact, compact, users):
    rec_sum, equal, score_gap = 0.0, 0, 0.0
    for u in users:
        a_ids, a_scores = exact.recommend(int(u), K)
        b_ids, b_scores = compact.recommend(int(u), K)
        rec_sum += len(set(a_ids.tolist()) & set(b_ids.tolist())) / max(1, len(a_ids))
        same = set(a_ids.tolist()) == set(b_ids.tolist())
        equal += same
        if same and np.array_equal(a_ids, b_ids):
            score_gap = max(score_gap, float(np.max(np.abs(a_scores - b_scores))))
    return rec_sum / len(users), equal / len(users), score_gap


def codes_of(x):
    """The core's int8 encoding of rows (max-abs scale, rounding half to even)."""
    top = np.abs(x).max(axis=1)
    scale = np.where(top > 0, top / 127.0, 0.0).astype(np.float32)
    inv = np.where(top > 0, 127.0 / np.where(top > 0, top, 1), 0.0).astype(np.float32)
    return np.rint(x * inv[:, None]).astype(np.float32), scale


def depth_curve(rec, users):
    """Share of users whose exact top 10 (no exclusions) lies within the best R by int8 score."""
    _, items, biases = rec.item_vectors()
    _, queries, _ = rec.user_vectors(users)
    item_codes, item_scale = codes_of(items)
    query_codes, query_scale = codes_of(queries)
    needed = []
    for start in range(0, len(users), 25):
        q, qc, qs = queries[start:start + 25], query_codes[start:start + 25], query_scale[start:start + 25]
        exact = q @ items.T + biases
        top = np.argpartition(-exact, K, axis=1)[:, :K]
        approx = (qc @ item_codes.T) * qs[:, None] * item_scale[None, :] + biases
        floor = np.take_along_axis(approx, top, axis=1).min(axis=1)
        needed.extend((approx > floor[:, None]).sum(axis=1) + 1)
    needed = np.asarray(needed)
    return {r: float(np.mean(needed <= r)) for r in DEPTHS}


def time_rounds(contenders, args, make_call):
    """{name: median over rounds of the round's median seconds per call}."""
    per_round = {name: [] for name in contenders}
    rng = np.random.default_rng(args.seed + 7)
    for r in range(args.rounds):
        order = list(contenders)[r % len(contenders):] + list(contenders)[:r % len(contenders)]
        users = rng.integers(0, args.users, args.queries)
        for name in order:
            call = make_call(name, contenders[name])
            times = []
            for u in users:
                t = time.perf_counter()
                call(int(u))
                times.append(time.perf_counter() - t)
            per_round[name].append(C.median(times))
    return {name: C.median(v) for name, v in per_round.items()}


def faiss_index(rec):
    _, items, biases = rec.item_vectors()
    index = faiss.IndexFlatIP(items.shape[1] + 1)
    index.add(np.ascontiguousarray(np.hstack([items, biases[:, None]]), dtype=np.float32))
    _, queries, _ = rec.user_vectors()
    return index, np.hstack([queries, np.ones((len(queries), 1), np.float32)])


def update_p50(models, args, n_items):
    rng = np.random.default_rng(args.seed + 11)
    per = {name: [] for name in models}
    for r in range(args.rounds + 1):
        users = rng.integers(0, args.users, args.update_events)
        items = rng.permutation(n_items)[(rng.zipf(1.1, args.update_events) - 1) % n_items]
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            f = models[name].update_one
            times = []
            for u, i in zip(users.tolist(), items.tolist(), strict=True):
                t = time.perf_counter_ns()
                f(u, i)
                times.append(time.perf_counter_ns() - t)
            if r > 0:  # the first round warms caches
                per[name].append(C.percentile(times, 50))
    return {name: C.median(v) for name, v in per.items()}


def bandwidth():
    a = np.ones(128 << 20, dtype=np.float32)  # 512 MiB
    a.dot(a)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        a.dot(a)
        times.append(time.perf_counter() - t)
    return a.nbytes / C.median(times)


def main(argv=None):
    args = parse_args(argv)
    rt, reason = C.import_rtrec()
    if rt is None:
        raise SystemExit(C.pending(reason))
    if faiss is not None:
        faiss.omp_set_num_threads(1)
    C.print_env(C.env_report(["faiss"]))
    print(f"- compact kernel: {rt._core.compact_kernel()}")
    C.wait_quiet(args.wait_quiet)
    noise = C.NoiseMeter().start()
    out = {"args": vars(args)}
    rows = []

    # ---- recall, both families
    recall_users = np.random.default_rng(args.seed + 3).choice(args.users, args.recall_users, replace=False)
    models = {}
    for family, n_items in (("mf", args.items), ("two_tower", args.tt_items)):
        t = time.perf_counter()
        exact, compact = train(rt, family, "exact", n_items, args), train(rt, family, "compact", n_items, args)
        print(f"trained {family} x2 over {n_items:,} items in {time.perf_counter() - t:.0f} s")
        users = recall_users[np.isin(recall_users, exact.user_vectors()[0])]
        r, eq, gap = recall(exact, compact, users)
        curve = depth_curve(compact, users)
        out[f"recall_{family}"] = {"recall@10": r, "set_equal": eq, "score_gap": gap, "depth_curve": curve,
                                   "users": len(users), "items": n_items}
        rows.append([f"{family} recall@10 / top-10 set equal ({len(users)} users, {n_items:,} items)",
                     f"{r:.4f} / {eq:.3f}", "target >= 0.999 / >= 0.99"])
        print(f"{family} depth curve (share of users whose exact top-10 is within the int8 top R): "
              + ", ".join(f"R={d}: {v:.3f}" for d, v in curve.items()))
        models[family] = (exact, compact)

    # ---- 1M items, one query
    exact, compact = models["mf"]
    compact2, exact2 = reload(rt, compact, 2), reload(rt, exact, 2)
    contenders = {"exact 1t": exact, "compact 1t": compact, "compact 2t": compact2, "exact 2t": exact2}
    index = queries = None
    if faiss is not None:
        index, queries = faiss_index(exact)
        contenders["faiss IndexFlatIP 1t"] = index

    def call_of(name, target):
        if name.startswith("faiss"):
            return lambda u: target.search(queries[u % len(queries)][None, :], K)
        return lambda u: target.recommend(u, K)

    lat = time_rounds(contenders, args, call_of)
    out["latency_1m_s"] = lat
    base = lat["exact 1t"]
    for name, s in lat.items():
        rows.append([f"{args.items:,} items, one query: {name}", f"{s * 1e3:.2f} ms",
                     f"{base / s:.2f}x exact 1t"])
    if "faiss IndexFlatIP 1t" in lat:
        faiss_ratio = lat["faiss IndexFlatIP 1t"] / lat["compact 1t"]
        rows.append(["compact 1t vs faiss IndexFlatIP 1t", "", f"{faiss_ratio:.2f}x"])

    # ---- batch
    batch_users = np.random.default_rng(args.seed + 5).integers(0, args.users, 1_000)
    batch = {}
    for _ in range(args.rounds):
        for name, rec in (("exact 2t", exact2), ("compact 2t", compact2)):
            t = time.perf_counter()
            rec.recommend_batch(batch_users, K)
            batch.setdefault(name, []).append(time.perf_counter() - t)
    batch = {n: C.median(v) for n, v in batch.items()}
    out["batch_s"] = batch
    rows.append(["recommend_batch 1,000 users, exact 2t / compact 2t",
                 f"{batch['exact 2t'] * 1e3:.0f} / {batch['compact 2t'] * 1e3:.0f} ms",
                 f"{batch['exact 2t'] / batch['compact 2t']:.2f}x (target >= 2x)"])

    # ---- memory and bandwidth
    per_item = compact.stats()["compact_bytes"] / compact.n_items
    rows.append(["shadow bytes per item (float table: 256)", f"{per_item:.1f} B",
                 f"{per_item / 256:.0%} (target <= 30%)"])
    bw = bandwidth()
    read = 76 * args.items  # codes 64 + scale pair 8 + bias 4 per row
    floor_s = read / bw
    out.update(per_item_bytes=per_item, bandwidth_bytes_s=bw, floor_s=floor_s)
    rows.append(["streaming read, 1 thread (numpy sdot)", f"{bw / 1e9:.1f} GB/s", ""])
    rows.append([f"reading the shadow once ({read / 1e6:.0f} MB) at that rate", f"{floor_s * 1e3:.2f} ms",
                 f"compact 1t is {lat['compact 1t'] / floor_s:.2f}x that"])
    del compact2, exact2, index

    # ---- update_one cost, both families
    for family, (ex, co) in models.items():
        p50 = update_p50({"exact": ex, "compact": co}, args, args.items if family == "mf" else args.tt_items)
        out[f"update_p50_ns_{family}"] = p50
        rows.append([f"{family} update_one p50, exact / compact",
                     f"{p50['exact'] / 1e3:.2f} / {p50['compact'] / 1e3:.2f} us",
                     f"{p50['compact'] / p50['exact']:.2f}x (target <= 1.1x)"])
    del models, exact

    # ---- 10M items, compact, 1 thread
    if args.big_items:
        t = time.perf_counter()
        big = train(rt, "mf", "compact", args.big_items, args, events_per_item=1, epochs=1)
        print(f"trained mf compact over {args.big_items:,} items in {time.perf_counter() - t:.0f} s")
        big_lat = time_rounds({"compact 1t": big, "compact 1t (1M)": compact}, args, call_of)
        out["latency_big_s"] = big_lat
        rows.append([f"{args.big_items:,} items, one query: compact 1t", f"{big_lat['compact 1t'] * 1e3:.2f} ms",
                     f"{big_lat['compact 1t'] / big_lat['compact 1t (1M)']:.1f}x the 1M time (target <= 12x, < 40 ms)"])

    frac = noise.stop()
    print()
    C.print_table(["measure", "value", "ratio"], rows)
    print(f"\n{C.report_noise(frac)}")
    out["noise"] = frac
    C.dump_json(args.json, out)


if __name__ == "__main__":
    main()
