"""Snapshot throughput: rtrec_native save / load / save_delta / apply_delta of a model with
1M rows (800k users + 200k items) x dim 64, against the disk itself, measured in the same run.

For each optimizer (AdaGrad, which doubles the row payload with its accumulators, and SGD):

  ours      rec.save(path)          full snapshot (temp file, fsync, rename: all in the timing)
            Recommender.load(path)  whole-file verification + model build
            rec.save_delta(path)    after a small change (--delta-events BPR events)
            model.apply_delta(path) the same delta applied to a loaded replica
  baseline  raw    : one Python f.write() of the same number of bytes + os.fsync; read back
                     with f.readinto() into a buffer allocated (and touched) beforehand, i.e.
                     the pure I/O cost without allocating the destination
            numpy  : np.save of the equivalent arrays (embeddings, optimizer state, biases,
                     IDs) into one file + os.fsync; np.load back (numpy allocates its arrays,
                     with transparent huge pages where the kernel allows madvise)

Loads are measured twice: "warm" (the file is still in the page cache, as right after a
save) and "cold" (the file's pages dropped first with posix_fadvise(DONTNEED) after the
fsync; no global cache drop, so other processes are not disturbed). Our MB/s is reported as a
ratio to the raw baseline of the same kind (write+fsync, warm read, cold read). MB = 1e6 bytes.
Each figure is the median over --repeats rounds; within a round the contenders take turns in
a rotating order so that machine noise hits all of them alike.

    python benchmarks/bench_snapshot.py            # 1M rows x 64, 5 repeats (~3 min)
    python benchmarks/bench_snapshot.py --quick    # 100k rows, smoke run

Files go to a fresh temporary directory under --tmpdir (default /tmp) that is removed at the
end, also on errors.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import _common as C

MB = 1e6


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=800_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--optimizers", default="adagrad,sgd", help="comma-separated: adagrad, sgd")
    p.add_argument("--delta-events", type=int, default=1_000,
                   help="BPR events between the snapshot and the timed delta (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="num_threads of our models")
    p.add_argument("--tmpdir", default="/tmp", help="parent of the temporary directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="small smoke configuration")
    C.add_quiet_arg(p)
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(users=80_000, items=20_000, repeats=2, wait_quiet=0.0)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- #
# file helpers
# --------------------------------------------------------------------------- #


def drop_cache(path):
    """Evict one file's (clean) pages from the page cache; the next read goes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_fraction(path):
    """Fraction of the file's pages in the page cache, via util-linux fincore (None if absent)."""
    import subprocess

    try:
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES,SIZE", path], capture_output=True, text=True,
                             timeout=10, check=True).stdout.split()
        res, size = int(out[0]), int(out[1])
        return res / size if size else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def raw_write(path, buf):
    with open(path, "wb") as fh:
        fh.write(buf)
        fh.flush()
        os.fsync(fh.fileno())


def raw_read(path, buf):
    """Read the whole file into `buf`, a buffer allocated and touched before the timing: the
    pure cost of the read, without page faults on fresh memory (a plain f.read() into a new
    bytes object is dominated by those here: 4 KiB pages, no transparent huge pages)."""
    view = memoryview(buf)
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while n < len(view):
            got = fh.readinto(view[n:])
            if not got:
                break
            n += got
    return n


def np_write(path, arrays):
    with open(path, "wb") as fh:
        for a in arrays:
            np.save(fh, a, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def np_read(path, n):
    with open(path, "rb") as fh:
        return [np.load(fh, allow_pickle=False) for _ in range(n)]


def equivalent_arrays(n_users, n_items, dim, adagrad, rng):
    """The arrays a hand-rolled numpy checkpoint of the same model would hold."""
    out = []
    for n in (n_users, n_items):
        out.append(np.arange(n, dtype=np.int64))  # IDs
        out.append(rng.standard_normal((n, dim), dtype=np.float32))  # embeddings
        out.append(rng.standard_normal(n, dtype=np.float32))  # biases
        out.append(np.zeros(n, dtype=np.uint32))  # update counts
        out.append(np.zeros(n, dtype=np.float64))  # last-update times
        if adagrad:
            out.append(rng.random((n, dim), dtype=np.float32))  # accumulators
            out.append(rng.random(n, dtype=np.float32))
    return out


# --------------------------------------------------------------------------- #
# one optimizer
# --------------------------------------------------------------------------- #


def build_model(rt, args, optimizer):
    """Every user and every item gets a row: user u clicks item u % n_items (BPR)."""
    rec = rt.Recommender(model="mf",
                         dim=args.dim, loss="bpr", optimizer=optimizer, num_threads=args.threads, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    users = rng.permutation(args.users).astype(np.int64)
    items = (users % args.items).astype(np.int64)
    t0 = time.perf_counter()
    rec.update(users, items)
    return rec, time.perf_counter() - t0


def events(rng, args):
    u = rng.integers(0, args.users, size=args.delta_events).astype(np.int64)
    i = rng.integers(0, args.items, size=args.delta_events).astype(np.int64)
    return u, i


def run_optimizer(rt, args, optimizer, workdir, meter_total):
    rec, t_build = build_model(rt, args, optimizer)
    st = rec.stats()
    print(f"\n### {optimizer}: built {st['n_users']} users + {st['n_items']} items "
          f"(dim {args.dim}) in {t_build:.1f} s; memory_bytes {st['memory_bytes'] / MB:.0f} MB", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    snap = os.path.join(workdir, "model.rtrec")
    raw = os.path.join(workdir, "raw.bin")
    npf = os.path.join(workdir, "arrays.npy")
    d_first = os.path.join(workdir, "delta-first.rtrec")
    d_small = os.path.join(workdir, "delta-small.rtrec")

    # What a Publisher does when it starts on a trained model: a full save, then its first delta.
    rec.save(snap)
    size = os.path.getsize(snap)
    start_delta_s, _ = C.time_once(rec.save_delta, d_first)
    start_delta_size = os.path.getsize(d_first)
    os.unlink(d_first)
    payload = np.random.default_rng(0).integers(0, 256, size=size, dtype=np.uint8).tobytes()  # incompressible
    read_buf = np.ones(size, dtype=np.uint8)  # allocated and touched once, reused by every raw read
    arrays = equivalent_arrays(args.users, args.items, args.dim, optimizer == "adagrad", rng)
    np_bytes = sum(a.nbytes for a in arrays)
    os.unlink(snap)

    t = {k: [] for k in ("save", "save_cpu", "load_warm", "load_cold", "load_cpu", "raw_write", "raw_read_warm",
                         "raw_read_cold", "np_write", "np_read_warm", "np_read_cold", "delta_first", "delta_small",
                         "apply_small", "apply_first")}
    sizes = {"delta_first": [], "delta_small": [], "np_file": []}
    cache_check = []
    contenders = ["ours", "raw", "numpy"]
    meter = C.NoiseMeter().start()
    for r in range(args.repeats):
        order = contenders[r % 3:] + contenders[:r % 3]
        for who in order:
            gc.collect()
            if who == "ours":
                # Steady state: some training since the last cut, a full save (a compaction),
                # the first delta after it, more training, the next delta.
                rec.update(*events(rng, args))
                c0 = time.process_time()
                dt, _ = C.time_once(rec.save, snap)
                t["save"].append(dt)
                t["save_cpu"].append(time.process_time() - c0)
                dt, m = C.time_once(rt.Recommender.load, snap, num_threads=args.threads)
                t["load_warm"].append(dt)
                del m
                gc.collect()
                drop_cache(snap)
                cache_check.append(cached_fraction(snap))
                c0 = time.process_time()
                dt, replica = C.time_once(rt.Recommender.load, snap, num_threads=args.threads)
                t["load_cold"].append(dt)
                t["load_cpu"].append(time.process_time() - c0)
                # The first delta after a full save, then a small change and its delta.
                dt, _ = C.time_once(rec.save_delta, d_first)
                t["delta_first"].append(dt)
                sizes["delta_first"].append(os.path.getsize(d_first))
                u, i = events(rng, args)
                rec.update(u, i)
                dt, _ = C.time_once(rec.save_delta, d_small)
                t["delta_small"].append(dt)
                sizes["delta_small"].append(os.path.getsize(d_small))
                dt, _ = C.time_once(replica.apply_delta, d_first)
                t["apply_first"].append(dt)
                dt, _ = C.time_once(replica.apply_delta, d_small)
                t["apply_small"].append(dt)
                if r == 0:  # the replica now predicts like the trainer
                    diff = float(np.max(np.abs(replica.predict(u, i) - rec.predict(u, i))))
                    if diff != 0.0:
                        raise RuntimeError(f"replica after deltas differs from the trainer by {diff}")
                del replica
                for f in (snap, d_first, d_small):
                    os.unlink(f)
            elif who == "raw":
                dt, _ = C.time_once(raw_write, raw, payload)
                t["raw_write"].append(dt)
                dt, n = C.time_once(raw_read, raw, read_buf)
                t["raw_read_warm"].append(dt)
                drop_cache(raw)
                dt, n = C.time_once(raw_read, raw, read_buf)
                t["raw_read_cold"].append(dt)
                assert n == size
                os.unlink(raw)
            else:
                dt, _ = C.time_once(np_write, npf, arrays)
                t["np_write"].append(dt)
                sizes["np_file"].append(os.path.getsize(npf))
                dt, _ = C.time_once(np_read, npf, len(arrays))
                t["np_read_warm"].append(dt)
                drop_cache(npf)
                dt, _ = C.time_once(np_read, npf, len(arrays))
                t["np_read_cold"].append(dt)
                os.unlink(npf)
        print(f"  round {r + 1}/{args.repeats} done", flush=True)
    meter_total.append(meter.stop())
    med = {k: C.median(v) for k, v in t.items()}
    return {"optimizer": optimizer, "size": size, "np_bytes": np_bytes, "rows": st["n_users"] + st["n_items"],
            "build_s": t_build, "start_delta_s": start_delta_s, "start_delta_size": start_delta_size, "median_s": med,
            "all_s": t, "sizes": {k: C.median(v) for k, v in sizes.items()},
            "cold_cache_fraction_after_drop": cache_check, "stats": st}


def table(results):
    rows = []
    for res in results:
        m, size = res["median_s"], res["size"]
        npb = res["sizes"]["np_file"]
        opt = res["optimizer"]

        def mbps(nbytes, s):
            return nbytes / MB / s if s and not math.isnan(s) else float("nan")

        ours = {"write": mbps(size, m["save"]), "warm": mbps(size, m["load_warm"]),
                "cold": mbps(size, m["load_cold"])}
        raw = {"write": mbps(size, m["raw_write"]), "warm": mbps(size, m["raw_read_warm"]),
               "cold": mbps(size, m["raw_read_cold"])}
        nps = {"write": mbps(npb, m["np_write"]), "warm": mbps(npb, m["np_read_warm"]),
               "cold": mbps(npb, m["np_read_cold"])}
        res["mb_per_s"] = {"ours": ours, "raw": raw, "numpy": nps}
        label = {"write": "save (write+fsync)", "warm": "load, page cache warm", "cold": "load, cold (fadvise)"}
        for kind in ("write", "warm", "cold"):
            key = {"write": "save", "warm": "load_warm", "cold": "load_cold"}[kind]
            rows.append([opt, label[kind], f"{m[key]:.2f} s", f"{ours[kind]:.0f}", f"{raw[kind]:.0f}",
                         f"{nps[kind]:.0f}", C.fmt_ratio(ours[kind] / raw[kind]),
                         C.fmt_ratio(ours[kind] / nps[kind])])
    return rows


def delta_table(results, args):
    rows = []
    for res in results:
        m, s = res["median_s"], res["sizes"]
        rows.append([res["optimizer"], "first save_delta after the first save of a trained model (Publisher start)",
                     f"{res['start_delta_size'] / MB:.1f} MB", f"{res['start_delta_s'] * 1e3:.0f} ms", "—"])
        rows.append([res["optimizer"], f"first save_delta after a save preceded by {args.delta_events} events",
                     f"{s['delta_first'] / 1e3:.0f} kB", f"{m['delta_first'] * 1e3:.1f} ms",
                     f"{m['apply_first'] * 1e3:.1f} ms"])
        rows.append([res["optimizer"], f"save_delta after {args.delta_events} BPR events",
                     f"{s['delta_small'] / 1e3:.0f} kB", f"{m['delta_small'] * 1e3:.1f} ms",
                     f"{m['apply_small'] * 1e3:.1f} ms"])
    return rows


def main(argv=None):
    args = parse_args(argv)
    rt, err = C.import_rtrec()
    env = C.env_report(["rtrec_native"] if rt else [])
    C.print_env(env)
    print(f"- load average: {os.getloadavg()}")
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    du = shutil.disk_usage(args.tmpdir)
    print(f"- {args.tmpdir}: {du.free / 1e9:.0f} GB free of {du.total / 1e9:.0f} GB")
    env["busy_before"] = C.wait_quiet(args.wait_quiet)
    print(f"## config\nusers={args.users} items={args.items} dim={args.dim} optimizers={args.optimizers} "
          f"repeats={args.repeats} delta_events={args.delta_events} num_threads={args.threads}")
    need = 4 * (args.users + args.items) * (2 * args.dim + 16) * 2.5
    if du.free < need:
        print(f"not enough space in {args.tmpdir}: need ~{need / 1e9:.1f} GB")
        return 1
    workdir = tempfile.mkdtemp(prefix="rtrec-bench-snapshot-", dir=args.tmpdir)
    results, noise = [], []
    try:
        for opt in [o.strip() for o in args.optimizers.split(",") if o.strip()]:
            results.append(run_optimizer(rt, args, opt, workdir, noise))
            gc.collect()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n## full snapshot throughput ({args.users + args.items:,} rows x dim {args.dim}; "
          f"median of {args.repeats}; MB/s with MB = 1e6 B)")
    for res in results:
        print(f"- {res['optimizer']}: snapshot file {res['size'] / MB:.1f} MB; numpy file "
              f"{res['sizes']['np_file'] / MB:.1f} MB; cached fraction after fadvise: "
              f"{res['cold_cache_fraction_after_drop']}")
    C.print_table(["optimizer", "operation", "ours time", "ours MB/s", "raw file MB/s", "numpy MB/s",
                   "ours / raw", "ours / numpy"], table(results))
    print("\n## deltas (trainer save_delta; apply_delta on a model loaded from the same snapshot)")
    C.print_table(["optimizer", "delta", "file size", "save_delta", "apply_delta"], delta_table(results, args))
    print("\ntarget (issue 4): save/load of 1M rows x dim 64 at disk-bandwidth order")
    print(C.report_noise(max(noise) if noise else float("nan")))
    print(f"- load average at end: {os.getloadavg()}")
    C.dump_json(args.json, {"bench": "snapshot", "config": vars(args), "env": env, "results": results,
                            "other_load_during": noise})
    return 0


if __name__ == "__main__":
    sys.exit(main())
