"""What a user, an item and the towers cost in bytes, for each model family at its defaults.

The model's own account (``stats()["memory_bytes"]``: rows, accumulators, index, seen sets,
histories, tower) is read after fitting a small model and the same model with 100,000 more
users (or items); the difference over 100,000 is the cost of one. Users are measured twice:
with one positive each (a new user) and with 20 (their seen set and, for two_tower, their
history ring hold 20 items). Deterministic (one thread, fixed seed); no peer, nothing timed.

    python benchmarks/bench_family_memory.py
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

import _common as C

EXTRA = 100_000


def model_bytes(rt, family: str, n_users: int, n_items: int, per_user: int) -> int:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    items[:n_items] = np.arange(n_items)  # every item appears
    rec = rt.Recommender(model=family, num_threads=1, seed=0)
    rec.fit(users, items, epochs=1)
    return int(rec.stats()["memory_bytes"])


def tower_bytes(rt) -> int:
    """The dense tower's weights and biases plus their row-wise AdaGrad accumulators."""
    d = rt.defaults("two_tower")
    widths = [2 * d["dim"], *d["tower"], d["dim"]]
    weights = sum(a * b + b for a, b in itertools.pairwise(widths))
    accumulators = sum(widths[1:]) if d["optimizer"] == "adagrad" else 0
    return 4 * (weights + accumulators)


def main() -> int:
    rt, why = C.import_rtrec()
    if rt is None:
        print(f"bench_family_memory: cannot import rtrec_native: {why}", file=sys.stderr)
        return 1
    rows = []
    for family in ("mf", "two_tower"):
        def per(n_users, n_items, per_user, base_users=1000, base_items=1000, _f=family):
            more = model_bytes(rt, _f, n_users, n_items, per_user)
            base = model_bytes(rt, _f, base_users, base_items, per_user)
            return (more - base) / EXTRA

        d = rt.defaults(family)
        rows.append([f"{family} (dim {d['dim']}, {d['optimizer']})",
                     f"{per(1000 + EXTRA, 1000, 1):.0f}", f"{per(1000 + EXTRA, 1000, 20):.0f}",
                     f"{per(1000, 1000 + EXTRA, 110):.0f}",
                     f"{tower_bytes(rt):,}" if family == "two_tower" else "-"])
    C.print_table(["family", "user, 1 positive (B)", "user, 20 positives (B)", "item (B)", "tower (B, once)"],
                  rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
