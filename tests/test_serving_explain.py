"""GET/POST /recommend with ``diversity`` and GET /explain, on a real server process."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_serving import Server


@pytest.fixture(scope="module")
def server():
    s = Server()
    # Users 1..20 consume items 10 and 11 together; user 0 consumes 10; others fill the catalogue.
    events = [{"user": u, "item": i} for u in range(1, 21) for i in (10, 11)]
    events += [{"user": 100 + j, "item": 20 + j} for j in range(40)]
    events += [{"user": 0, "item": 10}]
    assert s.post("/feedback", {"events": events})[0] == 200
    yield s
    s.stop()


def test_recommend_with_diversity(server):
    status, plain = server.get("/recommend?user=0&k=5")
    assert status == 200
    status, diverse = server.get("/recommend?user=0&k=5&diversity=0.5")
    assert status == 200 and len(diverse["items"]) == 5 and diverse["items"][0] == plain["items"][0]
    status, zero = server.get("/recommend?user=0&k=5&diversity=0")
    assert zero == plain
    status, body = server.post("/recommend", {"users": [0, 1], "k": 5, "diversity": 0.5})
    assert status == 200 and body["results"][0]["items"] == diverse["items"]


@pytest.mark.parametrize("query", ["diversity=1.5", "diversity=-1", "diversity=nan", "diversity=inf", "diversity=x"])
def test_bad_diversity_is_422(server, query):
    status, body = server.get(f"/recommend?user=0&k=5&{query}")
    assert status == 422, body


def test_bad_diversity_in_a_batch_is_422(server):
    assert server.post("/recommend", {"users": [0], "diversity": 2})[0] == 422
    assert server.post("/recommend", {"users": [0], "diversity": "0.5"})[0] == 422


def test_explain(server):
    status, body = server.get("/explain?user=0&item=11")
    assert status == 200 and body["user"] == 0 and body["item"] == 11
    assert body["reasons"][0]["item"] == 10 and isinstance(body["reasons"][0]["weight"], float)
    status, body = server.get("/explain?user=0&item=11&n=1")
    assert status == 200 and len(body["reasons"]) == 1


def test_explain_unknown_or_bad(server):
    status, body = server.get("/explain?user=424242&item=11")
    assert status == 404 and "user 424242 is not in the model" in body["detail"]
    status, body = server.get("/explain?user=0&item=999")
    assert status == 404 and "item 999" in body["detail"]
    assert server.get("/explain?user=0&item=abc")[0] == 422
    assert server.get("/explain?user=0")[0] == 422
    assert server.get("/explain?user=0&item=11&n=0")[0] == 422
