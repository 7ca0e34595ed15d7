"""Vector export: what a user builds an ANN index from must rank like `recommend` does."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rtrec_native as rt
from conftest import planted
from rtrec_native.export import export_vectors


def trained(family: str) -> rt.Recommender:
    users, items, _ = planted(n_users=120, n_items=150, per_user=20)
    rec = rt.Recommender(model=family, dim=16, num_threads=1, seed=0)
    rec.fit(users, items, epochs=3)
    rec.set_item_features([3, 4], [["genre=a"], ["genre=a", "genre=b"]])  # vectors include features
    rec.update([5, 6], [7, 8])
    return rec


def numpy_top_k(user_vector, item_ids, item_vectors, item_biases, k, exclude=()):
    scores = item_vectors.astype(np.float64) @ user_vector.astype(np.float64) + item_biases
    order = [j for j in np.argsort(-scores, kind="stable") if item_ids[j] not in exclude]
    return item_ids[order[:k]], scores[order[:k]]


@pytest.mark.parametrize("family", ["mf", "two_tower"])
@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_an_exact_numpy_top_k_over_exported_vectors_is_recommend(tmp_path, family, fmt):
    rec = trained(family)
    summary = export_vectors(rec, tmp_path / "vectors", format=fmt)
    if fmt == "npz":
        data = np.load(summary["files"][0])  # no pickle needed
        item_ids, item_vectors, item_biases = data["item_ids"], data["item_vectors"], data["item_biases"]
        user_ids, user_vectors = data["user_ids"], data["user_vectors"]
        meta = json.loads(str(data["meta"]))
    else:
        import pyarrow.parquet as pq

        items, users = pq.read_table(tmp_path / "vectors" / "items.parquet"), pq.read_table(
            tmp_path / "vectors" / "users.parquet")
        item_ids, item_biases = items["id"].to_numpy(), items["bias"].to_numpy()
        item_vectors = np.stack(items["vector"].to_numpy(zero_copy_only=False))
        user_ids, user_vectors = users["id"].to_numpy(), np.stack(users["vector"].to_numpy(zero_copy_only=False))
        meta = json.loads(items.schema.metadata[b"rtrec"])
    assert meta["model"] == family and meta["dim"] == 16 and item_vectors.shape == (rec.n_items, 16)
    seen = {}
    users, items, _ = planted(n_users=120, n_items=150, per_user=20)
    for u, i in zip(users.tolist() + [5, 6], items.tolist() + [7, 8], strict=True):
        seen.setdefault(u, set()).add(i)
    for row in range(0, len(user_ids), 7):
        user = int(user_ids[row])
        for exclude_seen in (False, True):
            want_ids, want_scores = rec.recommend(user, k=10, exclude_seen=exclude_seen)
            ids, scores = numpy_top_k(user_vectors[row], item_ids, item_vectors, item_biases, 10,
                                      seen[user] if exclude_seen else ())
            # Scores differ from recommend's by the user's constant (global and user bias) only.
            offset = want_scores.astype(np.float64) - scores
            np.testing.assert_allclose(offset, offset[0], atol=1e-4)
            assert ids.tolist() == want_ids.tolist(), (family, user, exclude_seen)


def test_string_ids_export_without_pickle_and_bad_arguments(tmp_path):
    rec = rt.Recommender(model="mf", dim=4, num_threads=1).fit(["u1", "u2"], ["a", "b"], epochs=1)
    summary = export_vectors(rec, tmp_path / "v", sides=("item",))
    data = np.load(summary["files"][0], allow_pickle=False)
    assert sorted(data["item_ids"].tolist()) == ["a", "b"] and "user_ids" not in data
    with pytest.raises(ValueError, match="format"):
        export_vectors(rec, tmp_path / "v", format="csv")
    with pytest.raises(ValueError, match="sides"):
        export_vectors(rec, tmp_path / "v", sides=("items",))
    with pytest.raises(TypeError, match="Recommender"):
        export_vectors("model", tmp_path / "v")
