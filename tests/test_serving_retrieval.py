"""The retrieval endpoints over HTTP (in-process ASGI): filters, anonymous visitors, similar
items, hide/unhide, the popular fallback, and 4xx (never 5xx) for bad input."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

pytest.importorskip("fastapi")

import rtrec_native as rt
from asgi_client import Asgi
from conftest import planted
from rtrec_native.serving import create_app


@pytest.fixture
def served():
    users, items, _ = planted(n_users=60, n_items=80, per_user=15)
    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit(users, items, epochs=5)
    rec.set_item_features(list(range(0, 80, 2)), [["genre=Comedy"]] * 40)
    client = Asgi(create_app(rec))
    yield rec, client
    client.close()


def get(client: Asgi, path: str, **params) -> tuple[int, dict]:
    status, _, body = client.request("GET", path, query=urlencode(params).encode())
    return status, json.loads(body)


def post(client: Asgi, path: str, doc: dict) -> tuple[int, dict]:
    status, _, body = client.request("POST", path, body=json.dumps(doc).encode())
    return status, json.loads(body)


def test_get_recommend_with_filters_matches_the_python_call(served):
    rec, client = served
    full = list(rec.recommend(3, k=80)[0])
    allowed = full[:20]
    status, doc = get(client, "/recommend", user=3, k=5, items=",".join(map(str, allowed)),
                      exclude=str(full[0]), tags="genre=Comedy")
    assert status == 200
    want, scores = rec.recommend(3, k=5, items=allowed, exclude=[full[0]], tags=["genre=Comedy"])
    assert doc["items"] == want.tolist() and doc["user"] == 3
    assert doc["scores"] == pytest.approx(scores.tolist())
    assert "fallback" not in doc


def test_unknown_users_are_flagged_as_the_popular_fallback(served):
    _, client = served
    status, doc = get(client, "/recommend", user=123456, k=3)
    assert status == 200 and doc["fallback"] == "popular" and len(doc["items"]) == 3
    status, doc = post(client, "/recommend", {"users": [1, 123456], "k": 3})
    assert status == 200
    assert "fallback" not in doc["results"][0] and doc["results"][1]["fallback"] == "popular"


def test_post_recommend_for_users_and_for_an_anonymous_history(served):
    rec, client = served
    status, doc = post(client, "/recommend", {"users": [1, 2], "k": 4, "tags": ["genre=Comedy"], "exclude": [0]})
    assert status == 200
    for result, user in zip(doc["results"], [1, 2], strict=True):
        assert result["items"] == rec.recommend(user, k=4, tags=["genre=Comedy"], exclude=[0])[0].tolist()
    status, doc = post(client, "/recommend", {"history": [5, 6, 7], "k": 4})
    assert status == 200
    assert doc["results"][0]["items"] == rec.recommend_for_history([5, 6, 7], k=4)[0].tolist()
    assert doc["results"][0]["user"] is None


def test_similar(served):
    rec, client = served
    status, doc = get(client, "/similar", item=4, k=5)
    assert status == 200 and doc["item"] == 4
    assert doc["items"] == rec.similar_items(4, k=5)[0].tolist()
    status, doc = get(client, "/similar", item=999999)
    assert status == 404 and "999999" in doc["detail"]


def test_hide_and_unhide(served):
    rec, client = served
    top = rec.recommend(1, k=2)[0].tolist()
    status, doc = post(client, "/hide", {"items": [top[0], 424242]})
    assert status == 200 and doc == {"hidden": 1, "unknown": 1}
    status, doc = get(client, "/recommend", user=1, k=2)
    assert top[0] not in doc["items"]
    assert get(client, "/stats")[1]["hidden_items"] == 1
    status, doc = post(client, "/unhide", {"items": [top[0]]})
    assert status == 200 and doc == {"hidden": 1, "unknown": 0}
    assert get(client, "/recommend", user=1, k=2)[1]["items"] == top


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("GET", "/recommend", {"user": 1, "tags": "genre=Comdy"}),
    ("GET", "/recommend", {"user": 1, "items": "a,b"}),
    ("GET", "/recommend", {"user": 1, "exclude": "x"}),
    ("GET", "/similar", {"item": 1, "tags": "nope"}),
    ("GET", "/similar", {"item": "abc"}),
    ("POST", "/recommend", {"users": [1], "history": [2]}),
    ("POST", "/recommend", {"k": 3}),
    ("POST", "/recommend", {"history": ["a"]}),
    ("POST", "/recommend", {"history": [1, 2], "weights": [1.0]}),
    ("POST", "/recommend", {"users": [1], "weights": [1.0]}),
    ("POST", "/recommend", {"users": [1], "tags": "genre=Comedy"}),
    ("POST", "/hide", {"items": []}),
    ("POST", "/hide", {"items": ["x"]}),
    ("POST", "/unhide", {}),
])
def test_bad_retrieval_requests_are_4xx_and_change_nothing(served, method, path, payload):
    rec, client = served
    before = (rec.stats(), rec.change_count)
    status, doc = (get(client, path, **payload) if method == "GET" else post(client, path, payload))
    assert 400 <= status < 500, doc
    assert doc["detail"]
    assert (rec.stats(), rec.change_count) == before


def test_a_replica_forwards_hide_and_unhide_to_its_trainer(tmp_path):
    class Forward:  # records what a Producer would write to the trainer's stream
        def __init__(self) -> None:
            self.sent: list = []

        def send_hide(self, items, hidden=True) -> str:
            self.sent.append((list(items), hidden))
            return "1-0"

    rec = rt.Recommender(model="mf", dim=8, num_threads=1, seed=0).fit([1, 2, 3], [10, 11, 12], epochs=1)
    with rt.Publisher(rec, tmp_path, interval=None), rt.Replica(tmp_path) as replica:
        forward = Forward()
        client = Asgi(create_app(replica, forward=forward))
        try:
            assert post(client, "/hide", {"items": [10, 11]}) == (202, {"forwarded": 2})
            assert post(client, "/unhide", {"items": [10]}) == (202, {"forwarded": 1})
            assert forward.sent == [([10, 11], True), ([10], False)]
            assert not replica.hidden([10, 11]).any()  # the trainer hides; its next delta tells the replica
        finally:
            client.close()
