"""The HTTP service end to end: a real server process on a loopback port."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rtrec serve` on a free loopback port. Its stderr goes to a file (a pipe nobody reads
    would block a server that logs much); `stderr_text` holds it after `stop`."""

    def __init__(self, *args: str) -> None:
        self.port = _free_port()
        self.stderr_text = ""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtrec_native.cli", "serve", "--port", str(self.port), "--dim", "8",
             "--threads", "1", *args], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz") == (200, {"status": "ok"}):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read() or b"{}")

    def get(self, path: str) -> tuple[int, dict]:
        return self.request("GET", path)

    def post(self, path: str, payload) -> tuple[int, dict]:
        return self.request("POST", path, json.dumps(payload).encode())

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        finally:
            self._log.seek(0)
            self.stderr_text = self._log.read().decode("utf-8", "replace")
            self._log.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def test_feedback_is_learned_before_the_reply_and_recommendations_follow(server):
    assert server.post("/feedback", {"events": [{"user": 1, "item": 10}, {"user": 1, "item": 11},
                                                {"user": 2, "item": 11}]}) == (200, {"applied": 3})
    status, body = server.get("/recommend?user=2&k=5")
    assert status == 200 and body["user"] == 2 and body["items"] == [10]  # 11 is seen
    for _ in range(30):
        server.post("/feedback", {"events": [{"user": 3, "item": 12, "weight": 2.0}]})
    status, body = server.get("/recommend?user=3&k=3&exclude_seen=false")
    assert body["items"][0] == 12 and len(body["scores"]) == 3
    status, body = server.post("/recommend", {"users": [1, 2, 999], "k": 2})
    assert status == 200 and [r["user"] for r in body["results"]] == [1, 2, 999]
    assert len(body["results"][2]["items"]) == 2
    status, stats = server.get("/stats")
    assert stats["n_users"] == 3 and stats["n_items"] == 3 and stats["updates"] > 0
    assert stats["events_applied"] == 3 + 30  # events acknowledged, not gradient steps


def test_a_new_item_with_features_is_recommendable_at_once(server):
    server.post("/feedback", {"events": [{"user": u, "item": 10} for u in range(20)]})
    assert server.post("/features/items", {"ids": [10, 99], "features": [["genre=x"], ["genre=x", "brand=b"]]}) == (
        200, {"updated": 2})
    status, body = server.get("/recommend?user=5&k=5")
    assert status == 200 and 99 in body["items"]  # never interacted with, but in the catalogue
    assert server.post("/features/users", {"ids": [5], "features": [["country=fr"]]}) == (200, {"updated": 1})
    _, stats = server.get("/stats")
    assert stats["n_item_features"] == 2 and stats["n_user_features"] == 1


BAD_REQUESTS = [
    ("POST", "/feedback", {"events": []}, 422),
    ("POST", "/feedback", {"events": [{"user": 1}]}, 422),
    ("POST", "/feedback", {"events": [{"user": 1, "item": 2, "colour": "red"}]}, 422),
    ("POST", "/feedback", {"events": [{"user": True, "item": 2}]}, 422),
    ("POST", "/feedback", {"events": [{"user": 1.5, "item": 2}]}, 422),
    ("POST", "/feedback", {"events": [{"user": 4, "item": "x"}]}, 422),  # int items so far
    ("POST", "/feedback", {"events": [{"user": 4, "item": 5, "weight": -1}]}, 422),
    ("POST", "/feedback", {"events": [{"user": 4, "item": 5, "label": 1}, {"user": 4, "item": 6}]}, 422),
    ("POST", "/feedback", [1, 2, 3], 422),
    ("GET", "/recommend?user=1&k=0", None, 422),
    ("GET", "/recommend?user=1&k=100000", None, 422),
    ("GET", "/recommend?user=abc", None, 422),
    ("GET", "/recommend", None, 422),
    ("POST", "/recommend", {"users": [], "k": 3}, 422),
    ("POST", "/recommend", {"users": [1], "k": 0}, 422),
    ("POST", "/features/items", {"ids": [7], "features": ["genre=x"]}, 422),       # a bare string
    ("POST", "/features/items", {"ids": [7], "features": [[1]]}, 422),             # not strings
    ("POST", "/features/items", {"ids": [7, 8], "features": [["a"]]}, 422),        # one list for two IDs
    ("POST", "/features/items", {"ids": [7], "features": [[""]]}, 422),
    ("POST", "/features/users", {"ids": ["x"], "features": [["a"]]}, 422),         # int users so far
]


@pytest.mark.parametrize("method,path,payload,status", BAD_REQUESTS)
def test_bad_requests_get_4xx_and_change_nothing(server, method, path, payload, status):
    server.post("/feedback", {"events": [{"user": 1, "item": 2}, {"user": 3, "item": 2}]})
    _, before = server.get("/stats")
    body = None if payload is None else json.dumps(payload).encode()
    code, reply = server.request(method, path, body)
    assert code == status and "detail" in reply
    assert server.get("/stats")[1] == before


def _raw_post(server, headers: dict, body: bytes = b"") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/feedback")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_oversized_and_unsized_bodies_are_refused_before_reading(server):
    # Declares 2 MB (over the 1 MiB default) and sends nothing: refused on the header alone.
    code, reply = _raw_post(server, {"Content-Type": "application/json", "Content-Length": str(2 << 20)})
    assert code == 413 and "bytes" in reply["detail"]
    code, reply = _raw_post(server, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                            b'5\r\n{"a":\r\n0\r\n\r\n')
    assert code == 411
    assert server.get("/stats")[1]["n_users"] == 0


# Bodies whose validation error used to echo input JSON cannot encode: the error response
# itself failed (HTTP 500, connection dropped). Non-finite numbers are refused by the parser.
UNENCODABLE_ECHO = [
    ("/feedback", b'{"events":[{"user":1e400,"item":2}]}', "64-bit float"),
    ("/feedback", b'{"events":[{"user":NaN,"item":2}]}', "finite"),
    ("/feedback", b'{"events":[{"user":1,"item":2,"label":-Infinity}]}', "finite"),
    ("/feedback", b'{"events":[{"user":1,"item":2,"weight":1e999}]}', "64-bit float"),
    ("/recommend", b'{"users":[Infinity],"k":2}', "finite"),
    ("/features/items", b'{"ids":[NaN],"features":[["a"]]}', "finite"),
    ("/recommend", b'{"users":[1],"k":"\\ud800"}', "integer"),                      # lone surrogate as input
    ("/feedback", b'{"events":[{"user":1,"item":2,"\\udfff":1}]}', "string"),       # ... and as a key
]


def test_unencodable_input_gets_a_422_and_the_connection_stays_open(server):
    server.post("/feedback", {"events": [{"user": 1, "item": 2}]})
    _, before = server.get("/stats")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path, body, words in UNENCODABLE_ECHO:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            reply = json.loads(resp.read())
            assert resp.status == 422, (path, body, reply)
            assert words in json.dumps(reply["detail"]), (body, reply)
            assert conn.sock is not None, "the server closed the connection"  # kept alive
        conn.request("GET", "/stats")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == before
    finally:
        conn.close()


def test_sigterm_flushes_and_a_restart_resumes_from_the_snapshot_dir(tmp_path):
    first = Server("--snapshot-dir", str(tmp_path), "--snapshot-interval", "30")
    try:
        first.post("/feedback", {"events": [{"user": u, "item": 100 + u % 7} for u in range(50)]})
        expected = first.get("/recommend?user=3&k=5")[1]
        stats = first.get("/stats")[1]
    finally:
        assert first.stop(signal.SIGTERM) == 0  # a requested, graceful shutdown
    second = Server("--snapshot-dir", str(tmp_path))
    try:
        # Long before the 30 s interval: only the shutdown flush can have saved this.
        assert second.get("/stats")[1]["n_users"] == stats["n_users"] == 50
        assert second.get("/recommend?user=3&k=5")[1] == expected
    finally:
        second.stop()


def test_a_capped_service_stays_capped_and_resumes_with_the_same_rows(tmp_path):
    first = Server("--snapshot-dir", str(tmp_path), "--snapshot-interval", "0.05", "--max-rows", "40")
    try:
        for start in range(0, 200, 20):  # 200 users through a 40-row cap, deltas meanwhile
            first.post("/feedback", {"events": [{"user": u, "item": u % 9} for u in range(start, start + 20)]})
            time.sleep(0.02)
        stats = first.get("/stats")[1]
        assert stats["n_users"] <= 40 and stats["evicted_users"] == 200 - stats["n_users"]
        expected = first.get("/recommend?user=199&k=5")[1]
    finally:
        assert first.stop(signal.SIGTERM) == 0
    second = Server("--snapshot-dir", str(tmp_path))
    try:
        resumed = second.get("/stats")[1]
        assert resumed["n_users"] == stats["n_users"] and resumed["evicted_users"] == stats["evicted_users"]
        assert second.get("/recommend?user=199&k=5")[1] == expected
    finally:
        second.stop()
