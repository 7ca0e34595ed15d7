"""Cold-start items with side features: does giving items their genres let a model rank items
it has never seen an interaction for better than IDs alone? Data: MovieLens ml-latest-small
(ratings.csv, movies.csv), which is not shipped with the repository.

Protocol (one "split" per seed, 3 seeds, medians reported):

- positives are ratings >= 4 (``--min-rating``; 0 keeps every rating as a positive);
- 20% of the rated movies are drawn as **cold** items and every interaction with them (of
  any rating) is removed from training; 10% of the remaining (warm) positives are held out
  for a warm check; the model trains on the other 90%;
- contenders, trained with the same settings and the same seed:
  - ``IDs only``: ``fit`` on the training positives; then the cold items are added to the
    catalogue with ``set_item_features(cold, [[]] * n)`` (a fresh, randomly initialised ID
    row and no features), as new items arrive after training;
  - ``IDs + genres``: ``set_item_features`` with the genres of the warm training items, then
    ``fit``, then ``set_item_features`` with the genres of the cold items;
  - ``IDs + genres, all set before fit``: the genres of *all* movies are set before ``fit``,
    so the cold items are in the catalogue while training (and are drawn as BPR negatives);
  - non-learned baselines: random scores; genre popularity (an item scores the mean, over
    its genres, of the average number of training positives per warm item of that genre); a
    user genre profile (an item scores the mean, over its genres, of the share of the user's
    training positives that carry that genre);
- cold evaluation: for every user with at least one held-out positive on a cold item, all
  cold items are scored with ``predict`` and ranked (ties broken at random). HitRate@10 (at
  least one positive in the top 10), Recall@10 (hits / min(10, positives)), NDCG@10 (binary
  gains), and AUC (held-out cold positives against the user's other cold items, ties count
  half), averaged over users. The user's cold items rated below the threshold stay candidates.
- warm check: for every user with a held-out warm positive, all items with a training
  positive are ranked, the user's training positives excluded: HitRate@10 and NDCG@10.

    python benchmarks/bench_cold_start.py           # 3 seeds, ~1 min
    python benchmarks/bench_cold_start.py --quick   # 1 seed, fewer epochs (smoke run)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import _common as C

DEFAULT_DATA = Path(os.environ.get(
    "RTREC_ML_SMALL", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"))
K = 10


# --------------------------------------------------------------------------- #
# data and split
# --------------------------------------------------------------------------- #


def load(data_dir: Path):
    import pandas as pd  # a dependency of rtrec_native

    from rtrec_native.data import load_features

    ratings = pd.read_csv(data_dir / "ratings.csv")
    ids, feats = load_features(data_dir / "movies.csv", prefix="genre", drop="(no genres listed)")
    genres = dict(zip(ids.tolist(), feats, strict=True))
    return (ratings["userId"].to_numpy(np.int64), ratings["movieId"].to_numpy(np.int64),
            ratings["rating"].to_numpy(np.float64), genres)


def make_split(users, items, ratings, min_rating, seed, cold_frac=0.2, warm_test_frac=0.1):
    rng = np.random.default_rng(seed)
    movies = np.unique(items)
    cold = np.sort(rng.choice(movies, size=round(cold_frac * len(movies)), replace=False))
    is_cold = np.isin(items, cold)
    pos = ratings >= min_rating
    cold_idx = np.flatnonzero(is_cold & pos)
    warm_idx = np.flatnonzero(~is_cold & pos)
    warm_idx = rng.permutation(warm_idx)
    n_test = round(warm_test_frac * len(warm_idx))
    return {
        "cold": cold,
        "train": np.sort(warm_idx[n_test:]),
        "warm_test": np.sort(warm_idx[:n_test]),
        "cold_test": cold_idx,
        "n_cold_events_removed": int(is_cold.sum()),
    }


# --------------------------------------------------------------------------- #
# metrics
# --------------------------------------------------------------------------- #


def rank_metrics(scores, relevant, excluded=None, seed=0):
    """scores[n_users, n_cand]; relevant / excluded: boolean masks of the same shape.
    Per-user HitRate@K, Recall@K (hits / min(K, n_rel)), NDCG@K and AUC (relevant vs every
    other non-excluded candidate, ties half), averaged over users with >= 1 relevant item.
    Ties in the top K are broken at random (seeded)."""
    scores = np.asarray(scores, dtype=np.float64)
    if excluded is not None:
        scores = np.where(excluded, -np.inf, scores)
    rng = np.random.default_rng(seed + 31337)
    tie = rng.random(scores.shape)
    order = np.lexsort((tie, -scores), axis=1)[:, :K]  # last key is primary
    top_rel = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    keep = n_rel > 0
    hits = top_rel.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    dcg = (top_rel * discounts).sum(axis=1)
    idcg = np.cumsum(discounts)[np.minimum(n_rel, K) - 1]
    # AUC via average ranks (ties count half)
    aucs = []
    for r in np.flatnonzero(keep):
        cand = np.isfinite(scores[r])
        s, rel = scores[r, cand], relevant[r, cand]
        neg = np.sort(s[~rel])
        if len(neg) == 0:
            continue
        below = np.searchsorted(neg, s[rel], side="left")
        tied = np.searchsorted(neg, s[rel], side="right") - below
        aucs.append(float(np.mean(below + 0.5 * tied)) / len(neg))
    return {
        "users": int(keep.sum()),
        "hr": float(np.mean(hits[keep] > 0)),
        "recall": float(np.mean(hits[keep] / np.minimum(n_rel[keep], K))),
        "ndcg": float(np.mean(dcg[keep] / idcg[keep])),
        "auc": float(np.mean(aucs)),
    }


# --------------------------------------------------------------------------- #
# one split
# --------------------------------------------------------------------------- #


def run_split(rt, data, args, seed):
    users, items, ratings, genres = data
    sp = make_split(users, items, ratings, args.min_rating, seed)
    tr_u, tr_i = users[sp["train"]], items[sp["train"]]
    cold = sp["cold"]
    warm_cat = np.unique(tr_i)  # items with a training positive
    eval_users = np.unique(users)
    uidx = {u: k for k, u in enumerate(eval_users.tolist())}

    def mask(cands, ev_u, ev_i):
        col = {it: k for k, it in enumerate(cands.tolist())}
        m = np.zeros((len(eval_users), len(cands)), dtype=bool)
        for u, i in zip(ev_u.tolist(), ev_i.tolist(), strict=True):
            c = col.get(i)
            if c is not None:
                m[uidx[u], c] = True
        return m

    cold_rel = mask(cold, users[sp["cold_test"]], items[sp["cold_test"]])
    warm_rel = mask(warm_cat, users[sp["warm_test"]], items[sp["warm_test"]])
    warm_seen = mask(warm_cat, tr_u, tr_i)
    warm_rel &= ~warm_seen

    def grid(rec, cands):
        uu = np.repeat(eval_users, len(cands))
        ii = np.tile(cands, len(eval_users))
        return rec.predict(uu, ii).reshape(len(eval_users), len(cands))

    def new_rec():
        return rt.Recommender(model="mf", dim=args.dim, loss="bpr", optimizer=args.optimizer,
                              learning_rate=args.lr, l2=args.l2, num_threads=args.threads,
                              seed=seed, negative_sampling=args.negative_sampling)

    out = {"split": {"train positives": len(tr_u), "cold items": len(cold),
                     "cold events removed (any rating)": sp["n_cold_events_removed"],
                     "held-out cold positives": len(sp["cold_test"]),
                     "held-out warm positives": len(sp["warm_test"]),
                     "cold eval users": int(cold_rel.any(axis=1).sum()),
                     "warm eval users": int(warm_rel.any(axis=1).sum())}}
    checks = {}

    # ---- learned contenders
    contenders = {
        "IDs only": "ids",
        "IDs + genres": "genres",
        "IDs + genres, all set before fit": "genres_all",
    }
    for name, how in contenders.items():
        rec = new_rec()
        if how == "genres":
            rec.set_item_features(warm_cat, [genres[i] for i in warm_cat.tolist()])
        elif how == "genres_all":
            everything = np.union1d(np.fromiter(genres.keys(), dtype=np.int64), np.unique(items))
            rec.set_item_features(everything, [genres.get(i, []) for i in everything.tolist()])
        t0 = time.perf_counter()
        rec.fit(tr_u, tr_i, epochs=args.epochs)
        fit_s = time.perf_counter() - t0
        warm_scores = grid(rec, warm_cat)  # before cold items exist (all set before fit: they do)
        if how == "ids":
            rec.set_item_features(cold, [[] for _ in range(len(cold))])
        elif how == "genres":
            rec.set_item_features(cold, [genres.get(i, []) for i in cold.tolist()])
        missing = [i for i in cold[:50].tolist() if rec.predict([eval_users[0]], [i])[0] == 0.0]
        cold_scores = grid(rec, cold)
        out[name] = {
            "cold": rank_metrics(cold_scores, cold_rel, seed=seed),
            "warm": rank_metrics(warm_scores, warm_rel, excluded=warm_seen, seed=seed),
            "fit_s": fit_s,
        }
        # sanity checks: cold scores vary across users; top-K path agrees with predict
        col_std = cold_scores.std(axis=0)
        top = np.argsort(-cold_scores, axis=1)[:, :K]
        distinct_top = len({tuple(sorted(r)) for r in top.tolist()})
        probe = eval_users[:5]
        diffs = []
        for u in probe.tolist():
            ids, sc = rec.recommend(u, k=rec.n_items, exclude_seen=False)
            by_id = dict(zip(ids.tolist(), sc.tolist(), strict=True))
            p = rec.predict(np.full(len(cold), u), cold)
            diffs.append(max(abs(by_id[i] - float(s)) for i, s in zip(cold.tolist(), p.tolist(), strict=True)))
        checks[name] = {
            "cold items in catalogue": int(np.isin(cold, rec.recommend(probe[0], k=rec.n_items,
                                                                         exclude_seen=False)[0]).sum()),
            "cold items scoring exactly 0 (of first 50)": len(missing),
            "median over cold items of score std across users": float(np.median(col_std)),
            "distinct cold top-10 sets over users": distinct_top,
            "max |recommend - predict| on cold items (5 users)": float(max(diffs)),
            "n_items": rec.n_items,
            "item feature rows": rec.stats().get("n_item_features"),
        }
        if how != "ids" and len(cold):
            c0 = int(cold[0])
            checks[name]["item_features(first cold)"] = rec.item_features(c0)
            checks[name]["genres in movies.csv (first cold)"] = genres.get(c0, [])

    # ---- non-learned baselines
    rng = np.random.default_rng(seed + 1)
    out["random"] = {"cold": rank_metrics(rng.random((len(eval_users), len(cold))), cold_rel, seed=seed),
                     "warm": rank_metrics(rng.random((len(eval_users), len(warm_cat))), warm_rel,
                                          excluded=warm_seen, seed=seed)}
    # genre statistics from training positives only
    genre_names = sorted({g for fs in genres.values() for g in fs})
    gcol = {g: k for k, g in enumerate(genre_names)}

    def genre_matrix(its):
        m = np.zeros((len(its), len(genre_names)))
        for r, i in enumerate(its.tolist()):
            for g in genres.get(i, []):
                m[r, gcol[g]] = 1.0
        return m

    g_warm = genre_matrix(warm_cat)  # warm items with a training positive
    g_cold = genre_matrix(cold)
    item_pop = np.bincount(np.searchsorted(warm_cat, tr_i), minlength=len(warm_cat)).astype(np.float64)
    per_genre = (g_warm * item_pop[:, None]).sum(axis=0) / np.maximum(g_warm.sum(axis=0), 1)

    def mean_over_genres(g, values):  # values[..., n_genres]; items without genres score 0
        n = np.maximum(g.sum(axis=1), 1)
        return (values @ g.T) / n

    gp = mean_over_genres(g_cold, per_genre[None, :])
    out["genre popularity"] = {
        "cold": rank_metrics(np.repeat(gp, len(eval_users), axis=0), cold_rel, seed=seed),
        "warm": rank_metrics(np.repeat(item_pop[None, :], len(eval_users), axis=0), warm_rel,
                             excluded=warm_seen, seed=seed),
    }
    # user genre profile: share of the user's training positives carrying each genre
    user_genre = warm_seen.astype(np.float64) @ g_warm
    user_genre /= np.maximum(warm_seen.sum(axis=1, keepdims=True), 1)
    out["user genre profile"] = {
        "cold": rank_metrics(mean_over_genres(g_cold, user_genre), cold_rel, seed=seed),
        "warm": rank_metrics(mean_over_genres(g_warm, user_genre), warm_rel, excluded=warm_seen, seed=seed),
    }
    out["checks"] = checks
    return out


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #

ROWS = [
    ("random", "random scores"),
    ("genre popularity", "genre popularity (warm: item popularity)"),
    ("user genre profile", "user genre profile"),
    ("IDs only", "**IDs only** (baseline)"),
    ("IDs + genres", "**IDs + genres**"),
    ("IDs + genres, all set before fit", "IDs + genres, all set before fit"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="folder with ratings.csv and movies.csv (default: %(default)s; "
                        "or set RTREC_ML_SMALL)")
    p.add_argument("--seeds", type=int, default=3, help="number of splits (seeds 0..n-1)")
    p.add_argument("--min-rating", type=float, default=4.0, help="positives: rating >= this (0: all)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--epochs", type=int, default=50,
                   help="chosen by the warm HitRate@10 of IDs only on seed 0 (5..100 tried; flat from 50)")
    p.add_argument("--optimizer", default="adagrad")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--negative-sampling", default="uniform", choices=["uniform", "popularity"])
    p.add_argument("--threads", type=int, default=1,
                   help="fit/predict threads (1: bit-for-bit reproducible; the data is small)")
    p.add_argument("--quick", action="store_true", help="1 seed, 5 epochs")
    p.add_argument("--json", default=None, help="save all per-seed results to this file")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 5

    if not (args.data_dir / "ratings.csv").exists() or not (args.data_dir / "movies.csv").exists():
        print(f"SKIPPED: ml-latest-small not found at {args.data_dir} (need ratings.csv and "
              "movies.csv; pass --data-dir or set RTREC_ML_SMALL). The data is not shipped "
              "with the repository.")
        return 0
    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    info = C.env_report()
    info["rtrec_native"] = getattr(rt, "__version__", "?")
    C.print_env(info)
    C.wait_quiet(args.wait_quiet)
    meter = C.NoiseMeter().start()
    t_start = time.perf_counter()
    data = load(args.data_dir)
    print(f"\ndata: {len(data[0]):,} ratings, {len(np.unique(data[0]))} users, "
          f"{len(np.unique(data[1])):,} rated movies, {len(data[3]):,} movies in movies.csv; "
          f"positives: rating >= {args.min_rating:g}")
    print(f"model: Recommender(model='mf', dim={args.dim}, loss='bpr', optimizer='{args.optimizer}', "
          f"learning_rate={args.lr:g}, l2={args.l2:g}, negative_sampling='{args.negative_sampling}', "
          f"num_threads={args.threads}, seed=<split seed>), fit(epochs={args.epochs})\n")

    results = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        res = run_split(rt, data, args, seed)
        results.append(res)
        print(f"## seed {seed} ({time.perf_counter() - t0:.1f} s): " +
              ", ".join(f"{k} {v:,}" for k, v in res["split"].items()))
        C.print_table(
            ["contender", "cold HR@10", "cold Recall@10", "cold NDCG@10", "cold AUC", "warm HR@10", "warm NDCG@10",
             "fit"],
            [[label, f"{res[key]['cold']['hr']:.4f}", f"{res[key]['cold']['recall']:.4f}",
              f"{res[key]['cold']['ndcg']:.4f}", f"{res[key]['cold']['auc']:.4f}",
              f"{res[key]['warm']['hr']:.4f}", f"{res[key]['warm']['ndcg']:.4f}",
              f"{res[key]['fit_s']:.2f} s" if "fit_s" in res[key] else "—"] for key, label in ROWS])
        print("checks:")
        for name, ch in res["checks"].items():
            print(f"- {name}: " + "; ".join(f"{k} = {v}" for k, v in ch.items()))
        print()

    def med(key, part, metric):
        return C.median([r[key][part][metric] for r in results])

    def spread(key, part, metric):
        xs = [r[key][part][metric] for r in results]
        return f"{min(xs):.3f}–{max(xs):.3f}"

    print(f"## median over {len(results)} seed(s) (min–max in brackets)")
    C.print_table(
        ["contender", "cold HR@10", "cold Recall@10", "cold NDCG@10", "cold AUC", "warm HR@10", "warm NDCG@10", "fit"],
        [[label] + [f"{med(key, part, m):.3f} ({spread(key, part, m)})"
                    for part, m in (("cold", "hr"), ("cold", "recall"), ("cold", "ndcg"), ("cold", "auc"),
                                    ("warm", "hr"), ("warm", "ndcg"))]
         + [f"{C.median([r[key]['fit_s'] for r in results]):.2f} s" if "fit_s" in results[0][key] else "—"]
         for key, label in ROWS])
    base, feat = "IDs only", "IDs + genres"
    wins = sum(r[feat]["cold"]["hr"] > r[base]["cold"]["hr"] for r in results)
    print(f"\ncold HR@10, IDs + genres vs IDs only: {med(feat, 'cold', 'hr'):.3f} vs {med(base, 'cold', 'hr'):.3f} "
          f"(median), higher on {wins} of {len(results)} seeds")
    for key in ("IDs only", "IDs + genres", "IDs + genres, all set before fit"):
        eps = C.median([r["split"]["train positives"] * args.epochs / r[key]["fit_s"] for r in results])
        print(f"fit throughput, {key}: {eps / 1e6:.2f} M events/s (median; {args.threads} thread(s))")
    print(f"total time {time.perf_counter() - t_start:.0f} s; {C.report_noise(meter.stop())} "
          "(only the fit times depend on it: with 1 thread the quality numbers are deterministic)")
    C.dump_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "env": info, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
