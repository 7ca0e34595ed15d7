"""Feature cold start on MovieLens against LightFM 1.17: movies never seen in training, ranked
for their future raters from their genres alone. Data: ml-latest-small (ratings.csv,
movies.csv), not shipped with the repository.

Protocol (one split per seed; the split and the metrics are bench_cold_start.py's):

- positives are ratings >= 4; 20% of the rated movies are drawn as **cold** and every rating
  of them is removed from training; 10% of the remaining positives are held out (unused
  here); every contender trains on the same other 90%;
- every training movie has its ID and its genres as item features; users have their ID;
- after training, the cold movies get their genres (no ID row trained, no event), and for
  every user with a held-out positive on a cold movie all cold movies are ranked:
  HitRate@10, Recall@10 (hits / min(10, positives)), NDCG@10, AUC, averaged over users;
- contenders, same dim, epochs, learning rate and threads:
  - rtrec_native mf with BPR and with WARP (``negatives=10``, LightFM's ``max_sampled``):
    ``set_item_features`` on the training movies, ``fit``, then ``set_item_features`` on the
    cold ones; scored by ``predict``;
  - LightFM 1.17 with BPR and with WARP (AdaGrad, its defaults otherwise): item features =
    identity + genres for the training movies (rows normalised to sum 1, as
    ``lightfm.data.Dataset`` does), genres only for the cold ones, which are not in the
    training matrix (so never sampled as negatives, as for us);
  - a non-learned baseline: the user's genre profile (share of their training positives
    carrying each genre, averaged over the movie's genres).

    python benchmarks/setup_lightfm.sh "$(which python)"   # once: LightFM from its sdist
    python benchmarks/bench_feature_cold_start.py           # 3 seeds, 2 threads
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import _common as C
from bench_cold_start import DEFAULT_DATA, load, make_split, rank_metrics


def lightfm_matrices(train_u, train_i, warm, cold, genres, genre_names):
    """Interactions (users x warm movies) and item features (warm rows: identity + genres;
    then cold rows: genres only), rows normalised to sum 1."""
    from scipy.sparse import coo_matrix, csr_matrix

    users = np.unique(train_u)
    u_index = {u: k for k, u in enumerate(users.tolist())}
    w_index = {m: k for k, m in enumerate(warm.tolist())}
    g_index = {g: len(warm) + k for k, g in enumerate(genre_names)}
    rows = [u_index[u] for u in train_u.tolist()]
    cols = [w_index[i] for i in train_i.tolist()]
    interactions = coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(warm)))
    r, c = [], []
    for k, m in enumerate(np.concatenate([warm, cold]).tolist()):
        if k < len(warm):
            r.append(k)
            c.append(k)
        for g in genres.get(m, []):
            r.append(k)
            c.append(g_index[g])
    shape = (len(warm) + len(cold), len(warm) + len(genre_names))
    features = csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)
    sums = np.asarray(features.sum(axis=1)).ravel()
    features = csr_matrix(features.multiply(1.0 / np.maximum(sums, 1.0)[:, None]))
    return interactions, features, u_index


def two_genre_shares(rt, args, seed):
    """Share of users whose genre's cold item outranks the other genre's, per contender.
    rtrec: the test's setting (dim 16, SGD, 5 epochs; the item-split fit fell to 50% there,
    with AdaGrad it happened to stay at 100% on this case); LightFM: its defaults (AdaGrad,
    it has no plain SGD), 10 epochs."""
    from rtrec_native import datasets

    users, items, taste, genres, n = datasets.two_genre_cold_start()
    warm, cold = np.arange(n), np.array([n, n + 1])
    everyone = np.arange(taste.size)

    def share(s0, s1):
        return float(np.mean(np.where(taste == 0, s0 > s1, s1 > s0)))

    out = {}
    for loss in ("bpr", "warp"):
        for threads in sorted({1, args.threads}):
            extra = {"negatives": 10} if loss == "warp" else {}
            rec = rt.Recommender(dim=16, optimizer="sgd", loss=loss, num_threads=threads, seed=seed, **extra)
            rec.set_item_features(warm, [genres[i] for i in warm.tolist()])
            rec.fit(users, items, epochs=5)
            rec.set_item_features(cold, [genres[i] for i in cold.tolist()])
            out[f"rtrec {loss}, {threads} thread(s)"] = share(rec.predict(everyone, np.full(taste.size, n)),
                                                             rec.predict(everyone, np.full(taste.size, n + 1)))
    if args.lightfm:
        from lightfm import LightFM

        interactions, features, u_index = lightfm_matrices(users, items, warm, cold, genres, ["genre=0", "genre=1"])
        lu = np.array([u_index[u] for u in everyone.tolist()], dtype=np.int32)
        for loss in ("bpr", "warp"):
            model = LightFM(loss=loss, random_state=seed)
            model.fit(interactions, item_features=features[:n], epochs=10, num_threads=args.threads)
            s0 = model.predict(lu, np.full(lu.size, n, np.int32), item_features=features, num_threads=args.threads)
            s1 = model.predict(lu, np.full(lu.size, n + 1, np.int32), item_features=features, num_threads=args.threads)
            out[f"LightFM {loss}, {args.threads} thread(s)"] = share(s0, s1)
    return out


def run_split(rt, data, args, seed):
    users, items, ratings, genres = data
    sp = make_split(users, items, ratings, 4.0, seed)
    tr_u, tr_i = users[sp["train"]], items[sp["train"]]
    cold = sp["cold"]
    warm = np.unique(tr_i)
    test_u, test_i = users[sp["cold_test"]], items[sp["cold_test"]]
    eval_users = np.unique(test_u[np.isin(test_u, tr_u)])  # future raters the models know
    e_index = {u: k for k, u in enumerate(eval_users.tolist())}
    c_index = {m: k for k, m in enumerate(cold.tolist())}
    relevant = np.zeros((len(eval_users), len(cold)), dtype=bool)
    for u, i in zip(test_u.tolist(), test_i.tolist(), strict=True):
        if u in e_index:
            relevant[e_index[u], c_index[i]] = True
    out = {"split": {"train positives": len(tr_u), "training movies": len(warm), "cold movies": len(cold),
                     "cold eval users": int(relevant.any(axis=1).sum())}}
    uu, ii = np.repeat(eval_users, len(cold)), np.tile(cold, len(eval_users))

    for loss in ("bpr", "warp"):
        for threads in sorted({1, args.threads}):
            rec = rt.Recommender(dim=args.dim, loss=loss, learning_rate=args.lr, num_threads=threads, seed=seed,
                                 **({"negatives": 10} if loss == "warp" else {}))
            rec.set_item_features(warm, [genres.get(i, []) for i in warm.tolist()])
            t0 = time.perf_counter()
            rec.fit(tr_u, tr_i, epochs=args.epochs)
            fit_s = time.perf_counter() - t0
            rec.set_item_features(cold, [genres.get(i, []) for i in cold.tolist()])
            scores = rec.predict(uu, ii).reshape(len(eval_users), len(cold))
            out[f"rtrec {loss}, {threads} thread(s)"] = {**rank_metrics(scores, relevant, seed=seed), "fit_s": fit_s}

    genre_names = sorted({g for fs in genres.values() for g in fs})
    if args.lightfm:
        from lightfm import LightFM

        interactions, features, u_index = lightfm_matrices(tr_u, tr_i, warm, cold, genres, genre_names)
        train_features = features[: len(warm)]
        lu = np.array([u_index[u] for u in uu.tolist()], dtype=np.int32)
        li = (len(warm) + np.tile(np.arange(len(cold)), len(eval_users))).astype(np.int32)
        for loss in ("bpr", "warp"):
            model = LightFM(no_components=args.dim, loss=loss, learning_rate=args.lr, random_state=seed)
            t0 = time.perf_counter()
            model.fit(interactions, item_features=train_features, epochs=args.epochs, num_threads=args.threads)
            fit_s = time.perf_counter() - t0
            scores = model.predict(lu, li, item_features=features, num_threads=args.threads)
            out[f"LightFM {loss}, {args.threads} thread(s)"] = {
                **rank_metrics(scores.reshape(len(eval_users), len(cold)), relevant, seed=seed), "fit_s": fit_s}

    # user genre profile (non-learned)
    g_col = {g: k for k, g in enumerate(genre_names)}

    def genre_matrix(movies):
        m = np.zeros((len(movies), len(genre_names)))
        for r, i in enumerate(movies.tolist()):
            for g in genres.get(i, []):
                m[r, g_col[g]] = 1.0
        return m

    w_index = {m: k for k, m in enumerate(warm.tolist())}
    seen = np.zeros((len(eval_users), len(warm)))
    for u, i in zip(tr_u.tolist(), tr_i.tolist(), strict=True):
        if u in e_index:
            seen[e_index[u], w_index[i]] = 1.0
    profile = (seen @ genre_matrix(warm)) / np.maximum(seen.sum(axis=1, keepdims=True), 1)
    g_cold = genre_matrix(cold)
    out["user genre profile"] = rank_metrics((profile @ g_cold.T) / np.maximum(g_cold.sum(axis=1), 1), relevant,
                                             seed=seed)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with ratings.csv and movies.csv")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05, help="both libraries' default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-lightfm", dest="lightfm", action="store_false", help="skip the LightFM rows")
    p.add_argument("--json", default=None, help="save every per-seed result to this file")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    for name in ("ratings.csv", "movies.csv"):
        if not (args.data_dir / name).exists():
            print(f"bench_feature_cold_start: {args.data_dir / name} not found (pass --data-dir)")
            return 2
    if args.lightfm:
        try:
            import lightfm  # noqa: F401  (before rtrec_native: its OpenMP starts under the user's environment)
        except ImportError:
            print("bench_feature_cold_start: lightfm is not installed; run benchmarks/setup_lightfm.sh "
                  "or pass --no-lightfm")
            return 2
    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    info = C.env_report(("lightfm",) if args.lightfm else ())
    C.print_env(info)
    C.wait_quiet(args.wait_quiet)
    meter = C.NoiseMeter().start()
    data = load(args.data_dir)
    print(f"\ndim {args.dim}, {args.epochs} epochs, learning rate {args.lr:g}, fit threads {args.threads}\n")
    results = []
    for seed in range(args.seeds):
        res = run_split(rt, data, args, seed)
        results.append(res)
        print(f"## seed {seed}: " + ", ".join(f"{k} {v:,}" for k, v in res["split"].items()))
        keys = [k for k in res if k != "split"]
        C.print_table(["contender", "HR@10", "Recall@10", "NDCG@10", "AUC", "fit"],
                      [[k] + [f"{res[k][m]:.4f}" for m in ("hr", "recall", "ndcg", "auc")]
                       + [f"{res[k]['fit_s']:.2f} s" if "fit_s" in res[k] else "—"] for k in keys])
        print()
    keys = [k for k in results[0] if k != "split"]

    def cell(k, m):
        xs = [r[k][m] for r in results]
        return f"{C.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"

    print(f"## median over {len(results)} seeds (min–max)")
    C.print_table(["contender", "cold HR@10", "cold Recall@10", "cold NDCG@10", "cold AUC", "fit (median)"],
                  [[k] + [cell(k, m) for m in ("hr", "recall", "ndcg", "auc")]
                   + [f"{C.median([r[k]['fit_s'] for r in results]):.2f} s" if "fit_s" in results[0][k] else "—"]
                   for k in keys])
    shares = [two_genre_shares(rt, args, seed) for seed in range(args.seeds)]
    print(f"\n## two-genre synthetic case ({args.seeds} seeds): share of users whose genre's cold item ranks first")
    C.print_table(["contender", "min share", "max share"],
                  [[k, f"{min(s[k] for s in shares):.3f}", f"{max(s[k] for s in shares):.3f}"] for k in shares[0]])
    print(f"\n{C.report_noise(meter.stop())}")
    C.dump_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "env": info, "results": results,
                            "two_genre": shares})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
