"""Bad input raises a clear ValueError/TypeError naming the argument, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import rtrec_native as rt
from conftest import fingerprint

USERS = [1, 2, 3, 1]
ITEMS = [10, 20, 30, 20]


MODELS = [("mf", "squared"), ("mf", "logistic"), ("mf", "bpr"), ("mf", "warp"), ("two_tower", "softmax"),
          ("two_tower", "squared")]


@pytest.fixture(params=MODELS, ids=[f"{m}-{loss}" for m, loss in MODELS])
def trained(request):
    model, loss = request.param
    labels = None if loss in ("bpr", "softmax", "warp") else [1.0, 0.0, 1.0, 1.0]
    extra = {"tower": (8,), "history": 4} if model == "two_tower" else {}
    rec = rt.Recommender(model=model, dim=4, loss=loss, seed=0, **extra).fit(USERS, ITEMS, labels, epochs=2)
    return rec


def _labels(rec, n):
    return None if rec.get_params()["loss"] in ("bpr", "softmax", "warp") else [1.0] * n


BAD_EVENTS = {
    # name: (kwargs builder, exception, words the message must contain)
    "length mismatch": (lambda r: dict(users=[1, 2], items=[10], labels=_labels(r, 2)), ValueError, "same length"),
    "label length": (lambda r: dict(users=[1, 2], items=[10, 20], labels=[1.0]), ValueError, "labels"),
    "nan label": (lambda r: dict(users=[1, 5], items=[10, 50], labels=[1.0, float("nan")]), ValueError, "labels"),
    "inf label": (lambda r: dict(users=[1, 5], items=[10, 50], labels=[1.0, float("inf")]), ValueError, "finite"),
    "nan weight": (lambda r: dict(users=[1, 5], items=[10, 50], labels=_labels(r, 2), weights=[1.0, float("nan")]),
                   ValueError, "weights"),
    "negative weight": (lambda r: dict(users=[1, 5], items=[10, 50], labels=_labels(r, 2), weights=[1.0, -0.5]),
                        ValueError, "weights"),
    "fractional float id": (lambda r: dict(users=[1.0, 5.5], items=[10, 50], labels=_labels(r, 2)),
                            ValueError, "users"),
    "nan float id": (lambda r: dict(users=[1, 5], items=np.array([10.0, np.nan]), labels=_labels(r, 2)),
                     ValueError, "items"),
    "mixed int and str ids": (lambda r: dict(users=[1, "x"], items=[10, 50], labels=_labels(r, 2)), TypeError, "mix"),
    "str ids on an int model": (lambda r: dict(users=["a", "b"], items=[10, 50], labels=_labels(r, 2)),
                                TypeError, "int"),
    "bool ids": (lambda r: dict(users=np.array([True, False]), items=[10, 50], labels=_labels(r, 2)),
                 TypeError, "bool"),
    "object junk ids": (lambda r: dict(users=[1, object()], items=[10, 50], labels=_labels(r, 2)), TypeError, "users"),
    "none id": (lambda r: dict(users=[1, None], items=[10, 50], labels=_labels(r, 2)), TypeError, "users"),
    "2-d ids": (lambda r: dict(users=np.ones((2, 2), dtype=np.int64), items=[10, 50], labels=_labels(r, 2)),
                ValueError, "1-D"),
    "scalar ids": (lambda r: dict(users=5, items=[10], labels=_labels(r, 1)), TypeError, "sequence"),
    "string labels": (lambda r: dict(users=[1, 5], items=[10, 50], labels=["a", "b"]), TypeError, "labels"),
    "bool labels": (lambda r: dict(users=[1, 5], items=[10, 50], labels=np.array([True, False])), TypeError, "labels"),
    "timestamps nan": (lambda r: dict(users=[1, 5], items=[10, 50], labels=_labels(r, 2), timestamps=[1.0, np.nan]),
                       ValueError, "timestamps"),
}


@pytest.mark.parametrize("method", ["fit", "update"])
@pytest.mark.parametrize("case", list(BAD_EVENTS), ids=list(BAD_EVENTS))
def test_bad_batches_raise_and_leave_the_model_unchanged(trained, method, case):
    build, exc, words = BAD_EVENTS[case]
    kwargs = build(trained)
    before = fingerprint(trained, [1, 2, 3, 5], [10, 20, 30, 50])
    with pytest.raises(exc, match=words):
        getattr(trained, method)(**kwargs)
    assert fingerprint(trained, [1, 2, 3, 5], [10, 20, 30, 50]) == before


def test_logistic_labels_outside_0_1_are_rejected_and_change_nothing():
    rec = rt.Recommender(model="mf", dim=4, loss="logistic", seed=0).fit(USERS, ITEMS, [1, 0, 1, 1], epochs=1)
    before = fingerprint(rec, [1, 2, 3, 7], [10, 20, 30, 70])
    for bad in ([1.0, 2.0], [-0.1, 1.0]):
        with pytest.raises(ValueError, match=r"labels must be (<=|>=)"):
            rec.update([1, 7], [10, 70], bad)
    assert fingerprint(rec, [1, 2, 3, 7], [10, 20, 30, 70]) == before


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_missing_labels_for_pointwise_losses(loss):
    rec = rt.Recommender(model="mf", dim=4, loss=loss)
    with pytest.raises(ValueError, match="labels are required"):
        rec.fit([1], [2])
    assert rec.n_users == 0


def test_fit_needs_data_and_epochs():
    rec = rt.Recommender(model="mf", dim=4)
    with pytest.raises(ValueError, match="empty"):
        rec.fit([], [])
    with pytest.raises(ValueError, match="epochs"):
        rec.fit([1], [2], epochs=0)
    assert rec.n_users == 0 and rec.n_items == 0


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(dim=0), ValueError, "dim"),
    (dict(dim=2.5), TypeError, "dim"),
    (dict(loss="hinge"), ValueError, "loss"),
    (dict(optimizer="adam"), ValueError, "optimizer"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(learning_rate="fast"), TypeError, "learning_rate"),
    (dict(l2=-1e-3), ValueError, "l2"),
    (dict(negatives=0), ValueError, "negatives"),
    (dict(num_threads=0), ValueError, "num_threads"),
    (dict(num_threads=-2), ValueError, "num_threads"),
    (dict(num_threads=1.5), ValueError, "num_threads"),
    (dict(num_threads=True), ValueError, "num_threads"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(grad_clip=0.0), ValueError, "grad_clip"),
    (dict(negative_sampling="hard"), ValueError, "negative_sampling"),
    # The family and two_tower's own arguments: nothing is built.
    (dict(model="deep"), ValueError, "model"),
    (dict(model=2), ValueError, "model"),
    (dict(model="two_tower", tower=()), ValueError, "tower"),
    (dict(model="two_tower", tower=(0,)), ValueError, "tower"),
    (dict(model="two_tower", tower=(-4,)), ValueError, "tower"),
    (dict(model="two_tower", tower=(10**6,)), ValueError, "tower"),
    (dict(model="two_tower", tower=tuple([8] * 9)), ValueError, "tower"),
    (dict(model="two_tower", tower=(8.5,)), TypeError, "tower"),
    (dict(model="two_tower", tower=128), TypeError, "tower"),
    (dict(model="two_tower", history=0), ValueError, "history"),
    (dict(model="two_tower", history=-1), ValueError, "history"),
    (dict(model="two_tower", history=10**6), ValueError, "history"),
    (dict(model="two_tower", recency=0.0), ValueError, "recency"),
    (dict(model="two_tower", recency=1.5), ValueError, "recency"),
    (dict(model="two_tower", negatives=0), ValueError, "negatives"),
    (dict(model="two_tower", negatives=-3), ValueError, "negatives"),
    (dict(model="two_tower", dim=0), ValueError, "dim"),
    (dict(model="mf", loss="softmax"), ValueError, "loss 'softmax' is not available for model 'mf'"),
    (dict(model="mf", tower=(8,)), ValueError, "tower applies to model='two_tower' only"),
    (dict(model="mf", history=5), ValueError, "history applies to model='two_tower' only"),
])
def test_bad_constructor_arguments(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        rt.Recommender(**kwargs)


def test_bad_recommend_arguments_change_nothing(trained):
    before = fingerprint(trained, [1, 2, 3], [10, 20, 30])
    for k in (0, -3):
        with pytest.raises(ValueError, match="k must be >= 1"):
            trained.recommend(1, k=k)
        with pytest.raises(ValueError, match="k must be >= 1"):
            trained.recommend_batch([1], k=k)
    with pytest.raises(TypeError, match="k must be an int"):
        trained.recommend(1, k=2.5)
    with pytest.raises(TypeError, match="user"):
        trained.recommend(True)
    with pytest.raises(TypeError, match="user"):
        trained.recommend(None)
    with pytest.raises(TypeError, match="this model's user IDs are int, got str"):
        trained.recommend("alice")
    with pytest.raises(ValueError, match="same length"):
        trained.predict([1, 2], [10])
    assert fingerprint(trained, [1, 2, 3], [10, 20, 30]) == before


@pytest.mark.parametrize("args,exc,words", [
    (("a", 10, 1.0), TypeError, "this model's user IDs are int, got str"),
    ((True, 10, 1.0), TypeError, "user must be an int or a str"),
    ((1.5, 10, 1.0), TypeError, "user must be an int or a str"),
    ((1, None, 1.0), TypeError, "item must be an int or a str"),
    ((1, 10, float("nan")), ValueError, "labels must be finite"),
    ((1, 10, "x"), TypeError, "label"),
    ((2**64, 10, 1.0), ValueError, "64-bit"),
])
def test_update_one_rejects_bad_events_and_changes_nothing(args, exc, words):
    rec = rt.Recommender(model="mf", dim=4, loss="squared", seed=0).fit(USERS, ITEMS, [4.0, 3.0, 2.0, 5.0], epochs=1)
    before = fingerprint(rec, [1, 2, 3], [10, 20, 30])
    with pytest.raises(exc, match=words):
        rec.update_one(*args)
    with pytest.raises((TypeError, ValueError)):  # the one-event list form: same verdict
        rec.update([args[0]], [args[1]], [args[2]])
    with pytest.raises(ValueError, match="weights"):
        rec.update_one(1, 10, 1.0, weight=-1.0)
    assert fingerprint(rec, [1, 2, 3], [10, 20, 30]) == before


def test_dim_has_an_upper_bound():
    with pytest.raises(ValueError, match="dim must be between 1 and 65536"):
        rt.Recommender(model="mf", dim=70_000)


def test_unencodable_strings_and_huge_numbers_are_value_or_type_errors():
    rec = rt.Recommender(model="mf", dim=4, loss="squared").fit(["a", "b"], ["x", "y"], [1.0, 2.0], epochs=1)
    before = fingerprint(rec, ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="valid Unicode"):
        rec.update(["a\ud800", "b"], ["x", "y"], [1.0, 2.0])
    with pytest.raises(ValueError, match="valid Unicode"):
        rec.update_one("a\ud800", "x", 1.0)
    with pytest.raises(ValueError, match="label must be a finite number"):
        rec.update_one("a", "x", 10**400)
    with pytest.raises(TypeError, match="labels must be numeric"):
        rec.update(["a"], ["x"], [10**400])
    assert fingerprint(rec, ["a", "b"], ["x", "y"]) == before


def test_the_id_kind_rule_is_one_rule_with_one_message(tmp_path):
    """Every path that takes IDs refuses the other kind through the core's rule: the same
    IdKindError (a TypeError), the same words, nothing changed."""
    rec = rt.Recommender(model="mf",
                         dim=4, loss="squared", seed=0, num_threads=1).fit(USERS, ITEMS, [4.0, 3.0, 2.0, 5.0], epochs=1)
    rec.save(tmp_path / "base")
    strings = rt.Recommender(model="mf", dim=4, loss="squared", seed=0, num_threads=1)
    strings.fit(["u"], ["i"], [1.0], epochs=1)
    calls = {
        "fit": lambda: rec.fit(["a"], [10], [1.0], epochs=1),
        "update": lambda: rec.update([1], ["x"], [1.0]),
        "update_one": lambda: rec.update_one("a", 10, 1.0),
        "predict": lambda: rec.predict([1], ["x"]),
        "recommend": lambda: rec.recommend("a"),
        "recommend_batch": lambda: rec.recommend_batch(["a"]),
        "set_item_features": lambda: rec.set_item_features(["x"], [["f"]]),
        "user_vectors": lambda: rec.user_vectors(["a"]),
    }
    messages = {}
    before = fingerprint(rec, [1, 2, 3], [10, 20, 30])
    for name, call in calls.items():
        with pytest.raises(rt.IdKindError) as info:
            call()
        assert isinstance(info.value, TypeError), name
        messages[name] = str(info.value).replace("item IDs", "user IDs")  # the side is named
    assert set(messages.values()) == {"this model's user IDs are int, got str"}, messages
    with pytest.raises(rt.IdKindError, match="this model's user IDs are str, got int"):
        strings.recommend(1)
    assert fingerprint(rec, [1, 2, 3], [10, 20, 30]) == before
    assert rec.stats()["n_item_features"] == 0
