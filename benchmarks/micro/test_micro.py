"""Micro-benchmarks of the hot calls, for a history of comparable runs (pytest-benchmark).

    python -m pytest benchmarks/micro --benchmark-only --benchmark-autosave   # record a run
    python -m pytest benchmarks/micro --benchmark-only --benchmark-compare    # against the last one

Not part of the default test run (``testpaths = ["tests"]``). Every benchmark runs once per
entry of :data:`MODELS` (keyword arguments for :class:`rtrec_native.Recommender`), each on a
model fitted once per module: 5,000 users x 20,000 items, 100,000 BPR events, dim 64, one
thread (so the numbers do not depend on what else the machine runs on its other cores).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rtrec_native as rt

#: The model families to measure, as Recommender keyword arguments.
MODELS: list[dict[str, Any]] = [{"model": "mf"}, {"model": "two_tower"}]

N_USERS, N_ITEMS, N_EVENTS = 5_000, 20_000, 100_000


def _name(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{value}" if key == "model" else f"{key}={value}" for key, value in kwargs.items()) or "default"


@pytest.fixture(scope="module", params=MODELS, ids=_name)
def family(request) -> dict[str, Any]:
    """The Recommender keyword arguments of one model family."""
    return request.param


@pytest.fixture(scope="module")
def fitted(family: dict[str, Any]) -> rt.Recommender:
    """A model that knows every user and item, fitted once per model family."""
    rng = np.random.default_rng(0)
    users = np.concatenate([np.arange(N_USERS), rng.integers(0, N_USERS, N_EVENTS - N_USERS)])
    items = np.concatenate([np.arange(N_ITEMS), rng.integers(0, N_ITEMS, N_EVENTS - N_ITEMS)])
    rec = rt.Recommender(dim=64, num_threads=1, seed=0, **family)
    return rec.fit(users, items, epochs=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1)


def test_update_one(benchmark, fitted, rng):
    events = itertools.cycle(zip(rng.integers(0, N_USERS, 10_000).tolist(),
                                 rng.integers(0, N_ITEMS, 10_000).tolist(), strict=True))

    def one() -> None:
        user, item = next(events)
        fitted.update_one(user, item)

    benchmark(one)


def test_update_batch_of_1000(benchmark, fitted, rng):
    users, items = rng.integers(0, N_USERS, 1000), rng.integers(0, N_ITEMS, 1000)
    benchmark(fitted.update, users, items)


def test_predict_1000_pairs(benchmark, fitted, rng):
    users, items = rng.integers(0, N_USERS, 1000), rng.integers(0, N_ITEMS, 1000)
    scores = benchmark(fitted.predict, users, items)
    assert scores.shape == (1000,)


def test_recommend_top10_of_20k_items(benchmark, fitted, rng):
    users = itertools.cycle(rng.integers(0, N_USERS, 1000).tolist())
    ids, _ = benchmark(lambda: fitted.recommend(next(users), k=10))
    assert len(ids) == 10


def test_recommend_batch_100_users(benchmark, fitted, rng):
    users = rng.integers(0, N_USERS, 100)
    ids, _ = benchmark(fitted.recommend_batch, users, k=10)
    assert ids.shape == (100, 10)


@pytest.fixture(scope="module")
def small(family: dict[str, Any]) -> rt.Recommender:
    """A small model (1,000 users x 1,000 items, dim 32) for the snapshot round trip."""
    rng = np.random.default_rng(2)
    rec = rt.Recommender(dim=32, num_threads=1, seed=0, **family)
    return rec.fit(rng.integers(0, 1000, 20_000), rng.integers(0, 1000, 20_000), epochs=1)


def test_save_small_model(benchmark, small, tmp_path: Path):
    benchmark(small.save, tmp_path / "model.rtrec")


def test_load_small_model(benchmark, small, tmp_path: Path):
    path = tmp_path / "model.rtrec"
    small.save(path)
    loaded = benchmark(rt.Recommender.load, path)
    assert loaded.n_items == small.n_items
