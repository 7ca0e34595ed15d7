"""Shared helpers for the rtrec_native benchmark scripts.

Timing, percentiles, markdown tables, environment description, and a seeded
Zipf event generator with planted group structure (so that learners have
something to learn and a quality sanity check means something).

Nothing here is imported by rtrec_native itself; the peers (implicit, river,
faiss-cpu, threadpoolctl) are benchmark-only dependencies.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

# What the user's environment said before anything was imported: rtrec_native's import sets
# OMP_WAIT_POLICY=passive by default (os.environ.setdefault), which also reaches any OpenMP
# runtime that initialises after it in the same process.
OMP_WAIT_POLICY_GIVEN = os.environ.get("OMP_WAIT_POLICY")

# --------------------------------------------------------------------------- #
# importing our package
# --------------------------------------------------------------------------- #


def find_dataset(name: str):
    """A data set directory: $RTREC_DATA/<name> when it exists, else ../shared/datasets/<name>
    next to the clone (as the tests look for it); the path returned may not exist."""
    from pathlib import Path

    env = os.environ.get("RTREC_DATA")
    if env and (Path(env) / name).is_dir():
        return Path(env) / name
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / name


def import_rtrec():
    """Return (module, None) or (None, reason) if rtrec_native cannot be imported.

    Scripts import their peers *before* calling this, so that the peers' OpenMP runtimes
    start under the user's environment, not under the OMP_WAIT_POLICY default that
    rtrec_native's import sets."""
    try:
        import rtrec_native as rt  # noqa: PLC0415
    except Exception as exc:  # broad on purpose: a half-built package can raise anything
        return None, f"{type(exc).__name__}: {exc}"
    return rt, None


def pending(reason: str | None) -> str:
    return f"pending ({reason})" if reason else "pending"


def rtrec_on_data(path) -> tuple:
    """For scripts that need a data file: (rtrec_native, None), or (None, exit code) after
    saying why not — the file is missing (exit 0: skipped) or the package does not import (1)."""
    if not path.is_file():
        print(f"skipped: {path} not found (MovieLens lives in ../shared/datasets, or set RTREC_DATA)")
        return None, 0
    rt, reason = import_rtrec()
    if rt is None:
        print(pending(reason))
        return None, 1
    return rt, None


# --------------------------------------------------------------------------- #
# timing and statistics
# --------------------------------------------------------------------------- #


def median(xs):
    return float(statistics.median(xs)) if len(xs) else float("nan")


def percentile(xs, q):
    """q in [0, 100]; linear interpolation (numpy default)."""
    if len(xs) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q))


def timer_floor_ns(n: int = 20000) -> float:
    """p50 of two back-to-back perf_counter_ns() calls: the cost of the timer itself."""
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        t0 = pc()
        t1 = pc()
        out[k] = t1 - t0
    return float(np.median(out))


def time_once(fn, *args, **kwargs):
    """Wall-clock seconds of one call, and its result."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return time.perf_counter() - t0, res


def time_once_cpu(fn, *args, **kwargs):
    """(wall seconds, CPU seconds of this process summed over all its threads, result).
    CPU time hardly moves when neighbours steal the cores, so on a shared machine it is a
    steadier (if different) measure than wall time; busy-waiting threads inflate it."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0, res


# --------------------------------------------------------------------------- #
# formatting
# --------------------------------------------------------------------------- #


def fmt_num(x, digits=3):
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if x != x:  # nan
        return "—"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.{digits - 1}f} M"
    if ax >= 1e4:
        return f"{x / 1e3:.{max(digits - 2, 0)}f} k"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 1:
        return f"{x:.{digits - 1}f}"
    return f"{x:.{digits}g}"


def fmt_us(ns):
    if ns is None or ns != ns:
        return "—"
    return f"{ns / 1e3:.2f} µs"


def fmt_ms(ns):
    if ns is None or ns != ns:
        return "—"
    return f"{ns / 1e6:.3f} ms"


def fmt_ratio(x):
    if x is None or x != x:
        return "—"
    return f"{x:.2f}×"


def print_table(headers, rows, file=None):
    """Print a GitHub-flavoured markdown table."""
    file = file or sys.stdout
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]

    def line(r):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    print(line(cells[0]), file=file)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for r in cells[1:]:
        print(line(r), file=file)
    file.flush()


def dump_json(path, payload):
    if not path:
        return
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
    print(f"\nwrote {path}")


# --------------------------------------------------------------------------- #
# environment
# --------------------------------------------------------------------------- #


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(mod):
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "?")
    except Exception:
        return None


def env_report(extra_modules=()):
    """A dict describing the machine and the numeric libraries; printed by every script."""
    info = {
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY (given)": OMP_WAIT_POLICY_GIVEN,
        "OMP_WAIT_POLICY (now)": os.environ.get("OMP_WAIT_POLICY"),
        "numpy": np.__version__,
    }
    for m in extra_modules:
        info[m] = _version(m)
    try:
        import threadpoolctl  # noqa: PLC0415

        pools = []
        for p in threadpoolctl.threadpool_info():
            pools.append(
                {
                    "api": p.get("internal_api"),
                    "lib": os.path.basename(p.get("filepath", "")),
                    "threads": p.get("num_threads"),
                    "kernel": p.get("architecture"),
                }
            )
        info["threadpools"] = pools
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def print_env(info):
    print("## environment")
    for k, v in info.items():
        if k == "threadpools" and isinstance(v, list):
            for p in v:
                kern = f", kernel {p['kernel']}" if p.get("kernel") else ""
                print(f"- threadpool: {p['api']} {p['lib']} threads={p['threads']}{kern}")
        else:
            print(f"- {k}: {v}")
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print(
            "- WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; numpy may run a slower "
            "kernel. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`."
        )


# --------------------------------------------------------------------------- #
# seeded Zipf data with planted structure
# --------------------------------------------------------------------------- #


def zipf_probs(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


@dataclass
class Events:
    users: np.ndarray  # int64 IDs in [0, n_users)
    items: np.ndarray  # int64 IDs in [0, n_items)
    labels: np.ndarray | None  # float32 ratings (only when ratings=True)
    n_users: int
    n_items: int
    oversample_rounds: int = 1

    def __len__(self):
        return len(self.users)


def make_events(
    n_users: int,
    n_items: int,
    n_events: int,
    seed: int = 0,
    user_s: float = 0.5,
    item_s: float = 0.9,
    n_groups: int = 32,
    p_in_group: float = 0.8,
    dedupe: bool = True,
    ratings: bool = False,
) -> Events:
    """Seeded synthetic interaction log.

    - user activity ~ Zipf(user_s) over n_users, item popularity ~ Zipf(item_s) over n_items;
    - planted structure: every user and item belongs to one of ``n_groups`` groups; with
      probability ``p_in_group`` a user's event goes to an item of the user's group (drawn by
      popularity within the group), else to an item drawn by global popularity;
    - popularity rank is decoupled from the ID by a random permutation, so IDs are dense
      0..n-1 (implicit needs row/column indices) but not sorted by popularity;
    - ``dedupe=True`` keeps only the first occurrence of each (user, item) pair and draws more
      events until exactly ``n_events`` distinct pairs exist (events stay in draw order, which
      is random);
    - ``ratings=True`` adds explicit labels in [1, 5]: ~4 for in-group events, ~2 otherwise.
    """
    rng = np.random.default_rng(seed)
    pu = zipf_probs(n_users, user_s)
    pi = zipf_probs(n_items, item_s)
    user_group = rng.integers(n_groups, size=n_users)
    item_group = rng.integers(n_groups, size=n_items)
    group_items = [np.flatnonzero(item_group == g) for g in range(n_groups)]
    group_cdfs = []
    for g in range(n_groups):
        c = np.cumsum(pi[group_items[g]])
        group_cdfs.append(c / c[-1] if len(c) else c)
    user_perm = rng.permutation(n_users).astype(np.int64)
    item_perm = rng.permutation(n_items).astype(np.int64)

    def draw(m):
        u = rng.choice(n_users, size=m, p=pu)
        ing = rng.random(m) < p_in_group
        it = rng.choice(n_items, size=m, p=pi)
        ug = user_group[u]
        for g in range(n_groups):
            if len(group_items[g]) == 0:
                continue
            mask = ing & (ug == g)
            cnt = int(mask.sum())
            if cnt:
                idx = np.searchsorted(group_cdfs[g], rng.random(cnt), side="right")
                idx = np.minimum(idx, len(group_items[g]) - 1)
                it[mask] = group_items[g][idx]
        lab = None
        if ratings:
            lab = np.where(ing, 4.0, 2.0) + rng.normal(0.0, 0.7, m)
            lab = np.clip(np.round(lab), 1.0, 5.0).astype(np.float32)
        return u, it, lab

    if not dedupe:
        u, it, lab = draw(n_events)
        return Events(user_perm[u], item_perm[it], lab, n_users, n_items)

    # Dedupe by a stable sort of the pair keys (numpy's hash-based np.unique is slow here).
    us, its, labs = [], [], []
    rounds = 0
    first_idx = np.empty(0, dtype=np.int64)
    while len(first_idx) < n_events:
        rounds += 1
        missing = n_events - len(first_idx)
        m = max(int(missing * (1.3 if rounds == 1 else 2.0)), 4096)
        u, it, lab = draw(m)
        us.append(u)
        its.append(it)
        if lab is not None:
            labs.append(lab)
        all_u = np.concatenate(us)
        all_it = np.concatenate(its)
        key = all_u.astype(np.int64) * n_items + all_it
        order = np.argsort(key, kind="stable")
        sk = key[order]
        is_first = np.empty(len(sk), dtype=bool)
        is_first[0] = True
        np.not_equal(sk[1:], sk[:-1], out=is_first[1:])
        first_idx = np.sort(order[is_first])
        if rounds > 30:
            raise RuntimeError(
                "could not draw enough distinct pairs; lower n_events or the Zipf exponents"
            )
    keep = first_idx[:n_events]
    u = np.concatenate(us)[keep]
    it = np.concatenate(its)[keep]
    lab = np.concatenate(labs)[keep] if labs else None
    return Events(user_perm[u], item_perm[it], lab, n_users, n_items, rounds)


def split_holdout(ev: Events, n_test: int, seed: int = 0, min_user_events: int = 3):
    """Hold out up to one event for each of ``n_test`` distinct users that have at least
    ``min_user_events`` events. Returns (train_mask, test_index)."""
    rng = np.random.default_rng(seed + 7919)
    counts = np.bincount(ev.users, minlength=ev.n_users)
    order = rng.permutation(len(ev))
    # first occurrence (in random order) per eligible user
    eligible = counts[ev.users[order]] >= min_user_events
    cand = order[eligible]
    _, first = np.unique(ev.users[cand], return_index=True)
    picked = cand[first]
    picked = rng.permutation(picked)[:n_test]
    mask = np.ones(len(ev), dtype=bool)
    mask[picked] = False
    return mask, np.sort(picked)


def sample_negatives(test_users, n_items, train_keys_sorted, seed=0, p=None):
    """One random item per test user that the user has not interacted with in training
    (keys are user * n_items + item, sorted). Uniform over items, or with probabilities
    ``p`` (e.g. training popularity)."""
    rng = np.random.default_rng(seed + 104729)

    def draw(m):
        return rng.choice(n_items, size=m, p=p) if p is not None else rng.integers(n_items, size=m)

    neg = draw(len(test_users))
    for _ in range(50):
        keys = test_users * n_items + neg
        pos = np.searchsorted(train_keys_sorted, keys)
        pos = np.minimum(pos, len(train_keys_sorted) - 1)
        clash = train_keys_sorted[pos] == keys
        if not clash.any():
            break
        neg[clash] = draw(int(clash.sum()))
    return neg


def auc_from_scores(pos_scores, neg_scores):
    """Fraction of (positive, negative) pairs ranked correctly; ties count half."""
    pos_scores = np.asarray(pos_scores, dtype=np.float64)
    neg_scores = np.asarray(neg_scores, dtype=np.float64)
    return float(np.mean((pos_scores > neg_scores) + 0.5 * (pos_scores == neg_scores)))


# --------------------------------------------------------------------------- #
# noise on a shared machine
# --------------------------------------------------------------------------- #


def _cpu_times():
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals), idle


def cpu_busy_fraction(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (this process sleeps meanwhile,
    so it is what the rest of the machine is doing). NaN where /proc/stat is missing."""
    try:
        t0, i0 = _cpu_times()
        time.sleep(interval)
        t1, i1 = _cpu_times()
    except OSError:
        return float("nan")
    dt = t1 - t0
    return float("nan") if dt <= 0 else 1.0 - (i1 - i0) / dt


def wait_quiet(max_wait: float, threshold: float = 0.10) -> float:
    """Wait up to ``max_wait`` seconds for the machine to be quiet (< threshold busy);
    returns the last reading and prints it."""
    deadline = time.monotonic() + max(max_wait, 0.0)
    busy = cpu_busy_fraction()
    while busy == busy and busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy_fraction(2.0)
    flag = "" if busy != busy or busy < threshold else "  (WARNING: machine busy; numbers are noisy)"
    print(f"- other load before start: {100 * busy:.0f}% of all CPUs{flag}\n")
    return busy


class NoiseMeter:
    """CPU time used by *other* processes between start() and stop(), as a fraction of all
    CPUs: (busy jiffies of the machine - jiffies of this process) / total jiffies."""

    def start(self):
        try:
            self.t0, self.i0 = _cpu_times()
            self.s0 = self._self_ticks()
        except OSError:
            self.t0 = None
        return self

    @staticmethod
    def _self_ticks():
        with open("/proc/self/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])  # utime + stime (all threads)

    def stop(self) -> float:
        if getattr(self, "t0", None) is None:
            return float("nan")
        try:
            t1, i1 = _cpu_times()
            s1 = self._self_ticks()
        except OSError:
            return float("nan")
        total = t1 - self.t0
        if total <= 0:
            return float("nan")
        busy = total - (i1 - self.i0)
        return max(0.0, (busy - (s1 - self.s0)) / total)


def report_noise(frac: float) -> str:
    msg = f"other processes used {100 * frac:.0f}% of all CPUs during the timed phases"
    if frac == frac and frac >= 0.10:
        msg += " (WARNING: noisy run)"
    return msg


def add_quiet_arg(parser):
    parser.add_argument("--wait-quiet", type=float, default=120.0, metavar="SECONDS",
                        help="wait up to this long for other processes to leave the CPUs idle "
                             "(shared machines); 0 = don't wait")
