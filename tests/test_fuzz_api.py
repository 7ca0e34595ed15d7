"""Fuzzing the Python API with hypothesis: arbitrary IDs, arrays, numbers and arguments
through every public method.

The invariant, for every call: it succeeds (and its result is well formed), or it raises
ValueError, TypeError or KeyError (SnapshotError and DeltaOrderError are ValueErrors) with a
message and the model's fingerprint unchanged. Any other exception, or a warning (the suite
runs with warnings as errors), fails the test; a crash takes the run down.

Fixed budgets and derandomised generation keep it fast and the same on every run. The
model families fuzzed are listed once in MODEL_KWARGS.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import rtrec_native as rt  # noqa: E402
from conftest import fingerprint  # noqa: E402

# Every model family the fuzzers run against: one entry per family/configuration; a new
# family is one more line here (e.g. dict(model="two_tower", dim=8)).
MODEL_KWARGS = [
    pytest.param(dict(loss="bpr", dim=4), id="mf-bpr"),
    pytest.param(dict(loss="squared", optimizer="sgd", dim=3), id="mf-squared"),
    pytest.param(dict(loss="logistic", dim=4, min_count=2, max_rows=64), id="mf-logistic-admission-capped"),
    pytest.param(dict(model="two_tower", dim=4, tower=(8,), history=5, negatives=3), id="two_tower-softmax"),
]
ALLOWED = (ValueError, TypeError, KeyError)

# CI runs every fuzzer (this module, test_fuzz_http.py, test_fuzz_files.py) with the fixed
# budgets below, derandomised: the same examples on every run. A longer hunt, by hand:
# RTREC_FUZZ_SCALE=20 multiplies every budget, RTREC_FUZZ_RANDOM=1 draws fresh examples
# (hypothesis then prints how to reproduce a failure).
SCALE = int(os.environ.get("RTREC_FUZZ_SCALE", "1"))
DERANDOMIZE = os.environ.get("RTREC_FUZZ_RANDOM", "") != "1"
EXAMPLES = 60 * SCALE  # per test and model family

FUZZ = settings(max_examples=EXAMPLES, derandomize=DERANDOMIZE, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
CALLS: Counter = Counter()  # API calls fuzzed, by outcome (printed by the last test of the module)

# --------------------------------------------------------------------------- models

BASE = {
    "int": ([1, 2, 3, 1, 2], [10, 20, 30, 20, 10]),
    "str": (["u1", "u2", "u3", "u1", "u2"], ["i10", "i20", "i30", "i20", "i10"]),
}
PROBE = {"int": ([1, 2, 3, 99], [10, 20, 30, 99]), "str": (["u1", "u2", "u3", "u-new"], ["i10", "i20", "i30", "i-new"]),
         "empty": ([], [])}


def build(model_kwargs: dict, kind: str) -> rt.Recommender:
    """A fresh small model: trained on int or str IDs, or empty (no ID kind yet)."""
    rec = rt.Recommender(num_threads=1, seed=0, **model_kwargs)
    if kind != "empty":
        users, items = BASE[kind]
        labels = [1.0, 0.0, 1.0, 1.0, 0.0]
        rec.fit(users, items, labels, epochs=2, timestamps=[100.0, 101.0, 102.0, 103.0, 104.0])
        rec.fit(users, items, labels, epochs=1)  # twice: admission (min_count=2) lets every ID in
        rec.set_item_features(items[:1], [["genre=a", "brand=b"]])
    return rec


_POOL: dict[tuple, tuple[rt.Recommender, int]] = {}
REUSE = 15  # examples per model before a fresh one is built


def model_for(model_kwargs: dict, kind: str) -> rt.Recommender:
    """A model of the given family and kind, reused for up to REUSE examples: building one
    costs milliseconds (tens with an admission sketch), far more than a fuzzed call, and a
    model that has taken in earlier examples' accepted calls is a realistic target too. An
    "empty" model is replaced once a call gave it an ID kind."""
    key = (repr(sorted(model_kwargs.items())), kind)
    rec, uses = _POOL.get(key, (None, REUSE))
    if rec is None or uses >= REUSE or (kind == "empty" and "unset" not in
                                        (rec._model.user_id_kind, rec._model.item_id_kind)):
        rec, uses = build(model_kwargs, kind), 0
    _POOL[key] = (rec, uses + 1)
    return rec


def state(rec: rt.Recommender, kind: str) -> tuple:
    """Everything observable that a rejected call must leave alone: the conftest fingerprint
    on known and unknown IDs, the other counters, and the ID kinds."""
    users, items = PROBE[kind]
    stats = rec.stats()
    extra = {k: stats[k] for k in ("not_admitted", "evicted_users", "evicted_items", "n_user_features",
                                   "n_item_features", "clock", "memory_bytes")}
    kinds = (getattr(rec._model, "user_id_kind", None), getattr(rec._model, "item_id_kind", None))
    return fingerprint(rec, users, items), extra, kinds, rec.snapshot_position


def attempt(rec: rt.Recommender, kind: str, call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run `call`; an allowed error must carry a message and leave the model as it was."""
    before = state(rec, kind)
    try:
        result = call()
    except ALLOWED as exc:
        CALLS["rejected"] += 1
        assert str(exc), f"{type(exc).__name__} without a message"
        after = state(rec, kind)
        assert after == before, f"{type(exc).__name__}({exc}) but the model changed"
        return None, exc
    CALLS["succeeded"] += 1
    return result, None


# --------------------------------------------------------------------------- strategies

INT_EDGES = [0, 1, -1, 7, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1, 2**64, 10**30,
             -(10**30), 10**400]
FLOAT_EDGES = [0.0, -0.0, 1.0, 1.5, -2.0, 0.5, 2.0**53, 2.0**63, -(2.0**63), 9.2e18, 3.5e38, 1e39, 1e300, 5e-324,
               float("nan"), float("inf"), float("-inf")]
STRING_EDGES = ["", "\x00", "a\x00b", "\ud800", "\udfff\ud800", "é", "\U0001f600", "x" * 300, " ", "1", "\u200b",
                "u1", "i10"]
NUMPY_SCALARS = [np.int64(5), np.int64(-(2**63)), np.uint64(2**64 - 1), np.int8(-1), np.uint8(255), np.float32("nan"),
                 np.float16(2.0), np.float64(1e300), np.bool_(True), np.str_("u1"), np.bytes_(b"x"),
                 np.datetime64(5, "s"), np.timedelta64(3, "s"), np.complex64(1)]
ODD_OBJECTS = [None, b"u1", bytearray(b"x"), Fraction(3, 1), Fraction(1, 3), Decimal("2"), Decimal("nan"), 1 + 0j,
               object(), [1], (1,), {1: 2}, {1}, range(2), ...]

any_text = st.text(st.characters(exclude_categories=()), max_size=6)  # lone surrogates included
scalar = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from(INT_EDGES), st.integers(0, 40),
    st.floats(), st.sampled_from(FLOAT_EDGES), st.booleans(),
    any_text, st.sampled_from(STRING_EDGES),
    st.sampled_from(NUMPY_SCALARS), st.sampled_from(ODD_OBJECTS),
)
plausible_id = st.one_of(st.integers(0, 40), st.sampled_from(["u1", "u2", "i10", "i20", "new"]))

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
          ">i8", ">f8", "<u4", "bool", "complex64", "U3", "S3", "datetime64[s]", "timedelta64[ms]"]


@st.composite
def array(draw: Any, n: int | None = None) -> np.ndarray:
    """A numpy array of any dtype, usually 1-D of length n, sometimes another shape, a
    non-contiguous view, Fortran order or read-only."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (n,) if n is not None and draw(st.integers(0, 4)) else draw(hnp.array_shapes(min_dims=0, max_dims=2,
                                                                                          min_side=0, max_side=4))
    arr = draw(hnp.arrays(dtype, shape))
    how = draw(st.integers(0, 5))
    if how == 0 and arr.ndim == 1:
        arr = np.repeat(arr, 2)[::2]  # the same values through a strided view
    elif how == 1 and arr.ndim == 2:
        arr = np.asfortranarray(arr)
    elif how == 2:
        arr.setflags(write=False)
    return arr


@st.composite
def batch(draw: Any, n: int, plausible: Any) -> Any:
    """n IDs or values in some container: plausible ones (to get past the first checks),
    hostile lists, arrays of every dtype, pandas Series, or not a sequence at all."""
    how = draw(st.integers(0, 9))
    if how <= 2:
        return draw(st.lists(plausible, min_size=n, max_size=n))
    if how == 3:
        return draw(st.lists(scalar, min_size=n, max_size=n))
    if how == 4:
        return tuple(draw(st.lists(st.one_of(plausible, scalar), min_size=n, max_size=n)))
    if how == 5:
        return draw(array(n))
    if how == 6:
        import pandas as pd  # noqa: PLC0415

        values = draw(st.lists(plausible, min_size=n, max_size=n))
        dtype = draw(st.sampled_from([None, "object", "category", "Int64", "string"]))
        with warnings.catch_warnings():  # pandas' own cast warnings while building the input
            warnings.simplefilter("ignore")
            try:
                return pd.Series(values, dtype=dtype)
            except (TypeError, ValueError, OverflowError):
                return pd.Series(values, dtype=object)
    if how == 7:
        values = draw(st.lists(plausible, min_size=n, max_size=n))
        return np.array(values, dtype=object)
    if how == 8:
        return draw(st.lists(plausible, min_size=0, max_size=n + 2))  # a length mismatch, mostly
    return draw(st.one_of(scalar, st.just(iter([1, 2])), st.just({1: 2}), st.just({1, 2}), st.just(range(n))))


label_value = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 3.0, 5.0]), st.sampled_from(FLOAT_EDGES),
                        st.floats(-10, 10))


def numbers(n: int) -> Any:
    return st.one_of(st.none(), batch(n, label_value))


timestamps_for = lambda n: st.one_of(  # noqa: E731
    st.none(), batch(n, st.one_of(st.floats(0, 2e9), st.sampled_from(FLOAT_EDGES))),
    hnp.arrays(st.sampled_from(["datetime64[s]", "datetime64[ns]", "datetime64[Y]", "datetime64[D]"]), n))


@st.composite
def events(draw: Any) -> dict:
    n = draw(st.integers(0, 5))
    return {"users": draw(batch(n, plausible_id)), "items": draw(batch(n, plausible_id)),
            "labels": draw(numbers(n)), "weights": draw(numbers(n)), "timestamps": draw(timestamps_for(n))}


K_VALUES = st.one_of(st.integers(1, 12), st.sampled_from([0, -1, 2**31, 2**32, 2**63 - 1, 2**64, 10**30, True, 1.0,
                                                          2.5, "3", None, np.int64(3), np.uint64(2**64 - 1),
                                                          np.int8(-1), np.float64(2.0)]))
FLAGS = st.sampled_from([True, False, 0, 1, None, "no", np.bool_(False), np.array([1, 2]), 2.5])
KINDS = st.sampled_from(["int", "str", "empty"])


def check_top(ids: np.ndarray, scores: np.ndarray, k: Any) -> None:
    assert isinstance(ids, np.ndarray) and isinstance(scores, np.ndarray) and scores.dtype == np.float32
    assert len(ids) == len(scores) <= int(k)
    assert np.isfinite(scores).all() and (np.diff(scores) <= 0).all()


# --------------------------------------------------------------------------- the fuzz tests


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, method=st.sampled_from(["fit", "update"]), ev=events(),
       epochs=st.one_of(st.integers(1, 2), st.sampled_from([0, -1, True, 1.5, np.int64(1), "2", None, 2**64])))
def test_fit_and_update(model_kwargs, kind, method, ev, epochs):
    rec = model_for(model_kwargs, kind)
    kwargs = dict(ev, epochs=epochs) if method == "fit" else ev
    attempt(rec, kind, lambda: getattr(rec, method)(**kwargs))


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, user=st.one_of(plausible_id, scalar), item=st.one_of(plausible_id, scalar),
       label=st.one_of(st.none(), label_value, scalar), weight=st.one_of(label_value, scalar),
       timestamp=st.one_of(st.none(), st.floats(0, 2e9), scalar))
def test_update_one(model_kwargs, kind, user, item, label, weight, timestamp):
    rec = model_for(model_kwargs, kind)
    attempt(rec, kind, lambda: rec.update_one(user, item, label, weight, timestamp))


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, data=st.data())
def test_predict(model_kwargs, kind, data):
    rec = model_for(model_kwargs, kind)
    n = data.draw(st.integers(0, 5))
    users, items = data.draw(batch(n, plausible_id)), data.draw(batch(n, plausible_id))
    scores, err = attempt(rec, kind, lambda: rec.predict(users, items))
    if err is None:
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (len(users),)
        assert np.isfinite(scores).all()


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, user=st.one_of(plausible_id, scalar), k=K_VALUES, exclude_seen=FLAGS)
def test_recommend(model_kwargs, kind, user, k, exclude_seen):
    rec = model_for(model_kwargs, kind)
    out, err = attempt(rec, kind, lambda: rec.recommend(user, k=k, exclude_seen=exclude_seen))
    if err is None:
        check_top(*out, k)


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, data=st.data(), k=K_VALUES, exclude_seen=FLAGS)
def test_recommend_batch(model_kwargs, kind, data, k, exclude_seen):
    rec = model_for(model_kwargs, kind)
    n = data.draw(st.integers(0, 4))
    users = data.draw(batch(n, plausible_id))
    out, err = attempt(rec, kind, lambda: rec.recommend_batch(users, k=k, exclude_seen=exclude_seen))
    if err is None:
        ids, scores = out
        assert ids.shape == scores.shape and ids.shape[0] == len(users) and ids.shape[1] <= int(k)
        assert scores.dtype == np.float32


feature = st.one_of(st.sampled_from(["genre=a", "brand=b", "new=x"]), any_text, st.sampled_from(STRING_EDGES), scalar)
feature_row = st.one_of(st.lists(feature, max_size=3), st.lists(st.sampled_from(["genre=a", "c"]), max_size=3),
                        st.just(["f"] * 1025), st.just(np.array(["a", "b"])), scalar, st.just(("t", "u")))


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, side=st.sampled_from(["items", "users"]), data=st.data())
def test_set_features(model_kwargs, kind, side, data):
    rec = model_for(model_kwargs, kind)
    n = data.draw(st.integers(0, 3))
    ids = data.draw(batch(n, plausible_id))
    features = data.draw(st.one_of(st.lists(feature_row, min_size=n, max_size=n), st.lists(feature_row, max_size=4),
                                   scalar, st.just(np.array([["a"]] * n, dtype=object).reshape(n, 1) if n else []),
                                   st.just(iter([["a"]] * n))))
    method = rec.set_item_features if side == "items" else rec.set_user_features
    attempt(rec, kind, lambda: method(ids, features))


times = st.one_of(st.floats(), st.sampled_from(FLOAT_EDGES), st.integers(-(2**70), 2**70), scalar)


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@FUZZ
@given(kind=KINDS, older_than=times, now=st.one_of(st.none(), times))
def test_evict(model_kwargs, kind, older_than, now):
    rec = model_for(model_kwargs, kind)
    n, err = attempt(rec, kind, lambda: rec.evict(older_than, now=now))
    if err is None:
        assert isinstance(n, int) and n >= 0


CONFIG = {
    "dim": st.one_of(st.integers(1, 8),
                     st.sampled_from([0, -1, 65536, 65537, True, 2.0, np.int64(4), 2**64, None, "4"])),
    "loss": st.sampled_from(["bpr", "squared", "logistic", "BPR", "", None, 1, "hinge"]),
    "optimizer": st.sampled_from(["sgd", "adagrad", "adam", None]),
    "learning_rate": st.one_of(st.floats(), st.sampled_from([0.05, 1e-30, 1e30, 0, -1, "0.1", None, True])),
    "l2": st.one_of(st.floats(), st.sampled_from([0, 1e-4, -1e-9, 1e30, None])),
    "negatives": st.one_of(st.integers(-2, 20), st.sampled_from([2**31, 1.0, None, True])),
    "num_threads": st.one_of(st.integers(-2, 4), st.sampled_from([None, 1024, 1025, 2**31, 2**63, 1.0, True,
                                                                  np.int32(2), "2"])),
    "seed": st.one_of(st.integers(-(2**65), 2**65), st.sampled_from([np.uint64(2**64 - 1), -1, 1.0, None, "1"])),
    "grad_clip": st.one_of(st.floats(), st.sampled_from([1e-30, 0, None])),
    "init_std": st.one_of(st.floats(), st.sampled_from([0, 1e30, -0.1])),
    "negative_sampling": st.sampled_from(["uniform", "popularity", "hard", None]),
    "min_count": st.one_of(st.integers(-1, 4), st.sampled_from([65535, 65536, 2**40, 1.0, None])),
    "ttl": st.one_of(st.none(), st.floats(), st.sampled_from([1, 0, -1, 2**80, "1"])),
    "max_rows": st.one_of(st.none(), st.integers(-1, 100), st.sampled_from([2**28, 2**28 + 1, 2**64, 1.5])),
}


@FUZZ
@given(kwargs=st.fixed_dictionaries({}, optional=CONFIG), ev=events())
def test_constructor_and_a_first_call(kwargs, ev):
    """Hostile settings: rejected at construction, or a model whose first call behaves."""
    try:
        rec = rt.Recommender(**kwargs)
    except ALLOWED as exc:
        CALLS["rejected"] += 1
        assert str(exc)
        return
    CALLS["succeeded"] += 1
    if rec.get_params()["dim"] > 1024 or rec.get_params()["negatives"] > 64:
        return  # valid, but slow to train here
    attempt(rec, "empty", lambda: rec.update(**ev))


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@settings(max_examples=12 * SCALE, derandomize=DERANDOMIZE, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(kind=KINDS, steps=st.lists(events(), min_size=1, max_size=4))
def test_save_load_and_deltas_reproduce_the_model_after_hostile_calls(tmp_path, model_kwargs, kind, steps):
    """Whatever the fuzzed calls did (or refused to do), the file holds the model: a loaded
    copy and a replica fed the deltas have the trainer's fingerprint."""
    rec = build(model_kwargs, kind)
    rec.save(tmp_path / "base")
    replica = rt.Recommender.load(tmp_path / "base", num_threads=1)
    for i, ev in enumerate(steps):
        attempt(rec, kind, lambda ev=ev: rec.update(**ev))
        rec.save_delta(tmp_path / f"d{i}")
        replica.apply_delta(tmp_path / f"d{i}")
    kind_now = {None: "empty", "unset": "empty"}.get(rec._model.user_id_kind, rec._model.user_id_kind)
    if kind_now != rec._model.item_id_kind and "unset" not in (rec._model.user_id_kind, rec._model.item_id_kind):
        kind_now = "empty"  # mixed kinds: compare counters only
    rec.save(tmp_path / "full")
    loaded = rt.Recommender.load(tmp_path / "full", num_threads=1)
    assert state(loaded, kind_now)[0] == state(rec, kind_now)[0]
    assert state(replica, kind_now)[0] == state(rec, kind_now)[0]
    CALLS["succeeded"] += 3 + 2 * len(steps)


PATHS = [b"bytes-name", "str-name", 123, None, 1.5, ["x"], "", ".", "missing-dir/m"]


@pytest.mark.parametrize("model_kwargs", MODEL_KWARGS)
@pytest.mark.parametrize("path", PATHS, ids=[repr(p) for p in PATHS])
def test_persistence_paths_of_every_type(tmp_path, monkeypatch, model_kwargs, path):
    """Wrong path types are TypeErrors; a path that cannot be written or read fails (the
    I/O errors are RuntimeError from save and FileNotFoundError from load, as documented
    in tests/test_snapshot.py) and changes nothing."""
    monkeypatch.chdir(tmp_path)
    rec = build(model_kwargs, "int")
    rec.save(tmp_path / "first")  # the lineage starts here (see test_a_failed_first_save_starts_no_delta_lineage)
    before = state(rec, "int")
    for call in (lambda: rec.save(path), lambda: rt.Recommender.load(path), lambda: rec.save_delta(path),
                 lambda: rec.apply_delta(path)):
        try:
            call()
        except (*ALLOWED, RuntimeError, FileNotFoundError) as exc:
            CALLS["rejected"] += 1
            if not isinstance(path, (str, bytes, os.PathLike)):
                assert isinstance(exc, TypeError), exc
            assert state(rec, "int") == before
        else:
            CALLS["succeeded"] += 1
            before = state(rec, "int")  # a save starts the lineage: that is a change


def test_a_save_path_with_a_nul_byte_is_refused(tmp_path):
    rec = build(dict(loss="bpr", dim=4), "int")
    with pytest.raises(ValueError):
        rec.save(str(tmp_path / "a\x00b"))
    assert not (tmp_path / "a").exists()


def test_a_failed_first_save_starts_no_delta_lineage(tmp_path):
    rec = build(dict(loss="bpr", dim=4), "int")
    with pytest.raises(RuntimeError, match="cannot create"):
        rec.save(tmp_path / "missing-dir" / "m")
    assert rec.snapshot_position == (0, 0)
    with pytest.raises(rt.DeltaOrderError):
        rec.save_delta(tmp_path / "d1")


# Each class of failure the fuzzers found in _validation.py, pinned as a plain regression test.


def test_mixed_int_and_float_ids_keep_every_int_exact():
    """[2**53 + 1, 0.0] went through one float64 array: the int became 2**53, another user."""
    rec = rt.Recommender(model="mf", dim=4, num_threads=1, seed=0)
    rec.update([2**53 + 1, 0.0], [1, 2])
    assert 1 not in rec.recommend(2**53 + 1, k=5)[0]       # learned as itself: item 1 is seen
    assert 1 in rec.recommend(2**53, k=5)[0]                # an unknown user: nothing excluded
    assert rec.n_users == 2


@pytest.mark.parametrize("call", [
    lambda r: r.predict((0, 10**400, 0.0), (1, 2, 3)),      # OverflowError converting to float
    lambda r: r.update([10**400, 1.0], [1, 2]),
    lambda r: r.evict(10**400),                              # OverflowError in float()
    lambda r: r.evict(1.0, now=-(10**400)),
    lambda r: rt.Recommender(num_threads=2**31),             # pybind11 TypeError at the first call
    lambda r: rt.Recommender(num_threads=10**6),             # libgomp cannot start that many threads
], ids=["predict-huge-int", "update-huge-int", "evict-huge", "evict-now-huge", "threads-c-int",
        "threads-million"])
def test_huge_numbers_are_value_errors(call):
    rec = build(dict(loss="bpr", dim=4), "int")
    before = state(rec, "int")
    with pytest.raises(ValueError, match=r"int64|finite|num_threads"):
        call(rec)
    assert state(rec, "int") == before


@pytest.mark.parametrize("name", ["learning_rate", "l2", "grad_clip", "init_std", "ttl"])
def test_float_settings_beyond_the_float_range_are_value_errors(name):
    with pytest.raises(ValueError, match=name):
        rt.Recommender(**{name: 10**400})


def test_float16_ids_raise_no_warning():
    """The range check compared a float16 array with 2.0**63: an overflow RuntimeWarning
    (an exception under -W error) before the IDs were even checked."""
    rec = rt.Recommender(model="mf", dim=4, num_threads=1)
    rec.update(np.array([1, 2], dtype=np.float16), np.array([3, 4], dtype=np.float32))
    assert rec.n_users == 2
    with pytest.raises(ValueError, match="finite"):
        rec.update(np.array([np.inf], dtype=np.float16), [3])


@pytest.mark.parametrize("unit,value", [("Y", 5000), ("Y", 2**40), ("D", -(2**40)), ("s", 2**62)])
def test_datetimes_outside_the_nanosecond_range_are_refused(unit, value):
    """datetime64 -> datetime64[ns] wraps around silently: the year 5000 was learned as 1709."""
    rec = build(dict(loss="bpr", dim=4), "int")
    before = state(rec, "int")
    stamps = np.array([0, value], dtype=f"datetime64[{unit}]")
    with pytest.raises(ValueError, match="1678-2262"):
        rec.update([1, 2], [10, 20], timestamps=stamps)
    assert state(rec, "int") == before
    rec.update([1, 2], [10, 20], timestamps=np.array(["2262-01-01", "1678-01-01"], dtype="datetime64[D]"))
    rec.update([1], [10], timestamps=np.array([1], dtype="datetime64[ps]"))  # finer than ns: truncated, fine


def test_zz_report_counts():
    """Not a check: how many API calls the module fuzzed, for the record (-s shows it)."""
    print(f"\nAPI calls fuzzed: {dict(CALLS)}, total {sum(CALLS.values())}")
