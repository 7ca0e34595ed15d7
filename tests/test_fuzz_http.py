"""Fuzzing the HTTP service as a hostile client would.

Three sources of requests, each with a fixed seed and a bounded number of examples so that
the normal test run stays fast:

- schemathesis, from the app's own OpenAPI schema: valid and schema-violating requests to
  every operation (in-process, through the whole ASGI stack);
- hypothesis, generated hostile bodies and query strings: non-finite and huge numbers, deep
  nesting, wrong types, invalid UTF-8 and lone surrogates, truncated JSON, duplicate keys,
  junk after the document, arrays at and over the limits (in-process);
- the same hostile requests over raw sockets to a real ``rtrec serve`` process on loopback,
  where a dropped connection shows.

Invariants for every request: never a 5xx and never a response that fails to complete
(in-process: the app raising; over a socket: a reset or EOF before a whole response); every
4xx is JSON with a ``detail``, and every body is strict JSON (no NaN); a rejected request
changes nothing (counters, scores and top lists: the ``fingerprint``). Requests that are
not HTTP at all (raw bytes in the request line) are answered by uvicorn's parser with a
plain-text 400 before the app sees them, and are not generated.
"""

from __future__ import annotations

import json
import math
import socket
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rtrec_native as rt  # noqa: E402
from asgi_client import Asgi  # noqa: E402
from conftest import fingerprint  # noqa: E402
from rtrec_native.serving import create_app  # noqa: E402
from test_fuzz_api import DERANDOMIZE, SCALE  # noqa: E402
from test_serving import Server  # noqa: E402

# Example budgets: fixed, so CI time is bounded and every run sends the same requests.
SCHEMA_EXAMPLES = 20 * SCALE  # per operation and generation mode (schemathesis)
HOSTILE_EXAMPLES = 150 * SCALE  # generated hostile requests per in-process test
SOCKET_EXAMPLES = 100 * SCALE   # hostile requests to the real server

FUZZ = settings(max_examples=HOSTILE_EXAMPLES, derandomize=DERANDOMIZE, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SENT: Counter = Counter()     # requests fuzzed, by source (printed by the last test of the module)

USERS, ITEMS = [1, 2, 3, 4, 5, 999], [10, 11, 12, 13, 14, 15, 77]
# Small limits for the in-process app, so "at" and "over" the limits cost little.
LIMITS = {"max_body_bytes": 20_000, "max_k": 50, "max_events": 40}


def _trained() -> rt.Recommender:
    rec = rt.Recommender(model="mf", dim=4, loss="bpr", num_threads=1, seed=0)
    rec.fit([1, 1, 2, 3, 4, 5, 5], [10, 11, 12, 13, 14, 10, 15], epochs=2)
    rec.set_item_features([15], [["genre=x"]])
    return rec


def _model_state(rec: rt.Recommender) -> tuple:
    return fingerprint(rec, USERS, ITEMS), rec.stats()["n_item_features"], rec.stats()["n_user_features"]


def strict_json(body: bytes) -> Any:
    """Parse as RFC 8259 JSON: UTF-8, no NaN/Infinity."""
    def no_constant(name: str) -> Any:
        raise AssertionError(f"non-finite number {name} in a response")
    return json.loads(body.decode("utf-8"), parse_constant=no_constant)


def check_reply(status: int, headers: dict[str, str], body: bytes, what: Any) -> Any:
    """The invariants every reply must meet; returns the parsed body."""
    assert status < 500, f"{status} for {what!r}: {body[:300]!r}"
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, what)
    doc = strict_json(body)
    if status >= 400:
        assert isinstance(doc, dict) and "detail" in doc and doc["detail"], (status, doc, what)
    return doc


# --------------------------------------------------------------------------- in-process ASGI


@pytest.fixture(scope="module")
def live():
    """One model and app for the module's in-process tests: fuzzing a model that has
    learned (and keeps learning from the valid requests among the generated ones)."""
    rec = _trained()
    client = Asgi(create_app(rec, **LIMITS))
    yield rec, client
    client.close()


def send_and_check(live, method: str, path: str, query: bytes = b"", body: bytes = b"",
                   headers: list[tuple[bytes, bytes]] | None = None, source: str = "hostile") -> tuple[int, Any]:
    rec, client = live
    before = _model_state(rec)
    status, out_headers, reply = client.request(method, path, query, body, headers)
    SENT[source] += 1
    doc = check_reply(status, out_headers, reply, (method, path, query, body[:200]))
    if status >= 400:
        assert _model_state(rec) == before, f"rejected {method} {path} {body[:200]!r} changed the model"
    return status, doc


# --------------------------------------------------------------------------- hostile JSON text

EDGE_NUMBERS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E309", "1e-400", "-0", "-0.0",
                "0e99999", "1.7976931348623157e308", "3.5e38", "1e39", "9223372036854775807",
                "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551616",
                "1" * 60, "1" * 5000, "0x10", "1.", ".5", "01", "+1", "1e", "--1", "1_000", "١٢"]
EDGE_STRINGS = ['""', '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"\\ud83d\\ude00"', '"a\\u0000b"', '"\\"',
                '"é"', '"' + "x" * 600 + '"', '"1"', '"true"', '"NaN"', '"\\uFFFF"', '"\\x41"', "'single'"]


def _json_string(text: str) -> str:
    # ensure_ascii writes lone surrogates as \udxxx escapes: valid JSON, unencodable text.
    return json.dumps(text, ensure_ascii=True)


scalars = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.sampled_from(EDGE_STRINGS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=12).map(_json_string),
    st.sampled_from(["true", "false", "null"]),
)


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


KEYS = st.one_of(st.sampled_from(['"user"', '"item"', '"label"', '"weight"', '"events"', '"users"', '"k"',
                                  '"exclude_seen"', '"ids"', '"features"', '"\\ud800"', '""', '"timestamp"']),
                 st.text(max_size=6).map(_json_string))
values = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
                           st.lists(st.tuples(KEYS, kids), max_size=4).map(_object)),
    max_leaves=12,
)
maybe = st.one_of(values, scalars)


@st.composite
def event(draw: Any) -> str:
    """A feedback event whose fields are sometimes right, sometimes hostile, sometimes
    missing, duplicated or extra."""
    pairs = []
    for key, good in (('"user"', st.integers(0, 7).map(str)), ('"item"', st.integers(9, 16).map(str)),
                      ('"label"', st.sampled_from(["1", "0", "0.5", "null"])),
                      ('"weight"', st.sampled_from(["1", "2.5", "0"]))):
        choice = draw(st.integers(0, 9))
        if choice <= 5:
            pairs.append((key, draw(good)))
        elif choice <= 8:
            pairs.append((key, draw(maybe)))
        # 9: the key is left out
    if draw(st.integers(0, 9)) == 0 and pairs:
        pairs.append(draw(st.sampled_from(pairs)))       # a duplicate key
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(KEYS), draw(scalars)))        # an extra key
    return _object(draw(st.permutations(pairs)))


def _events(n_strategy: Any) -> Any:
    return st.lists(event(), min_size=0, max_size=4).flatmap(
        lambda evs: n_strategy.map(lambda n: '{"events":[' + ",".join((evs * n)[:n] if evs else []) + "]}"))


feedback_body = st.one_of(_events(st.integers(1, 4)), _events(st.sampled_from([LIMITS["max_events"],
                                                                              LIMITS["max_events"] + 1])),
                          values, st.just('{"events":[]}'), st.just('{"events":{}}'))
users_list = st.lists(st.one_of(st.integers(0, 8).map(str), scalars), max_size=4).map(
    lambda xs: "[" + ",".join(xs) + "]")
recommend_body = st.one_of(
    st.tuples(users_list, st.one_of(st.sampled_from(["1", "10", str(LIMITS["max_k"]), str(LIMITS["max_k"] + 1), "0"]),
                                    scalars),
              st.sampled_from(["true", "false", '"yes"', "1", "null"])).map(
        lambda t: '{"users":' + t[0] + ',"k":' + t[1] + ',"exclude_seen":' + t[2] + "}"),
    st.integers(LIMITS["max_events"], LIMITS["max_events"] + 1).map(
        lambda n: '{"users":[' + ",".join(["1"] * n) + "]}"),
    values,
)
feature_list = st.lists(st.one_of(st.sampled_from(['"genre=x"', '"brand=b"']), st.sampled_from(EDGE_STRINGS), scalars),
                        max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
features_body = st.one_of(
    st.tuples(st.lists(st.one_of(st.integers(9, 16).map(str), scalars), min_size=1, max_size=3),
              st.lists(feature_list, min_size=1, max_size=3)).map(
        lambda t: '{"ids":[' + ",".join(t[0]) + '],"features":[' + ",".join(t[1]) + "]}"),
    values,
)


@st.composite
def damaged(draw: Any, text_strategy: Any) -> bytes:
    """A document as bytes, sometimes damaged: truncated, junk appended, a raw invalid UTF-8
    byte or a raw (unescaped) lone surrogate inserted, deeply nested, or a second document."""
    text = draw(text_strategy)
    raw = text.encode("utf-8", "surrogatepass")
    how = draw(st.integers(0, 9))
    if how == 0 and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == 1:
        raw += draw(st.sampled_from([b"junk", b",", b"}", b"]", b"\x00", b" {}", b"\n" + raw]))
    elif how == 2 and raw:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]))\
            + raw[at:]
    elif how == 3:
        depth = draw(st.sampled_from([50, 500, 990, 5000]))
        raw = b"[" * depth + raw + b"]" * depth
    elif how == 4:
        raw = b"\xef\xbb\xbf" + raw  # a byte order mark
    return raw


@FUZZ
@given(body=damaged(feedback_body))
def test_hostile_feedback_bodies(live, body):
    status, doc = send_and_check(live, "POST", "/feedback", body=body)
    if status == 200:
        assert set(doc) == {"applied"} and 1 <= doc["applied"] <= LIMITS["max_events"]


@FUZZ
@given(body=damaged(recommend_body))
def test_hostile_batch_recommend_bodies(live, body):
    status, doc = send_and_check(live, "POST", "/recommend", body=body)
    if status == 200:
        for row in doc["results"]:
            assert len(row["items"]) == len(row["scores"]) <= LIMITS["max_k"]
            assert all(isinstance(s, float) and math.isfinite(s) for s in row["scores"])


@FUZZ
@given(body=damaged(features_body), side=st.sampled_from(["items", "users"]))
def test_hostile_feature_bodies(live, body, side):
    send_and_check(live, "POST", f"/features/{side}", body=body)


query_value = st.one_of(st.integers(-(2**70), 2**70).map(str), st.sampled_from(EDGE_NUMBERS),
                        st.text(max_size=8), st.binary(max_size=6), st.sampled_from(["", "true", "maybe", "1e3"]))


def _pct(value: str | bytes) -> str:
    return quote(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value, safe="")


@FUZZ
@given(params=st.lists(st.tuples(st.sampled_from(["user", "k", "exclude_seen", "x", ""]), query_value), max_size=5),
       raw_tail=st.sampled_from([b"", b"&", b"&&=", b"&user", b"%", b"%zz", b"%FF", b";k=1", b"&user=%00"]))
def test_hostile_query_strings(live, params, raw_tail):
    query = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in params).encode() + raw_tail
    status, doc = send_and_check(live, "GET", "/recommend", query=query)
    if status == 200:
        assert len(doc["items"]) == len(doc["scores"]) <= LIMITS["max_k"]


CONTENT_TYPES = [None, b"", b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                 b"application/json; charset=latin-1", b"application/problem+json", b"application/json\xff",
                 b"APPLICATION/JSON", b"application/jsonx"]


@settings(max_examples=50 * SCALE, derandomize=DERANDOMIZE, database=None, deadline=None)
@given(ctype=st.sampled_from(CONTENT_TYPES), body=damaged(feedback_body),
       length=st.sampled_from([None, "-1", "abc", "1e3", "99999999999999999999", " 5"]))
def test_hostile_headers(live, ctype, body, length):
    headers = [] if ctype is None else [(b"content-type", ctype)]
    if length is not None:
        headers.append((b"content-length", length.encode()))
    send_and_check(live, "POST", "/feedback", body=body, headers=headers)


def test_limits_hold_at_and_just_over(live):
    """Exactly at each limit is served; one over is a 4xx with a reason."""
    n = LIMITS["max_events"]
    ok = {"events": [{"user": 1, "item": 10}] * n}
    assert send_and_check(live, "POST", "/feedback", body=json.dumps(ok).encode())[0] == 200
    over = {"events": [{"user": 1, "item": 10}] * (n + 1)}
    assert send_and_check(live, "POST", "/feedback", body=json.dumps(over).encode())[0] == 422
    assert send_and_check(live, "GET", "/recommend", query=f"user=1&k={LIMITS['max_k']}".encode())[0] == 200
    assert send_and_check(live, "GET", "/recommend", query=f"user=1&k={LIMITS['max_k'] + 1}".encode())[0] == 422
    pad = LIMITS["max_body_bytes"] - len(b'{"users":[1],"k":3}')
    exact = b'{"users":[1],"k":3}' + b" " * pad
    assert send_and_check(live, "POST", "/recommend", body=exact)[0] == 200
    assert send_and_check(live, "POST", "/recommend", body=exact + b" ")[0] == 413


# Each class of failure these fuzzers found, pinned as a plain regression test.
FOUND = [
    (b'{"events":[{"user":1e400,"item":2}]}', 422, "64-bit float"),                # 500 + dropped connection
    (b'{"events":[{"user":NaN,"item":2}]}', 422, "finite"),                        # 500
    (b'{"events":[{"user":1,"item":2,"\\ud800":1}]}', 422, "string"),              # 500: surrogate key echoed
    (b'{"events":[{"user":1,"item":2,"user":5}]}', 422, "duplicate key"),          # silently learned user 5
    (b'{"events":[{"user":"\xff","item":2}]}', 422, "UTF-8"),                      # 400 without a reason
    ('{"events":[{"user":1,"item":2}]}'.encode("utf-16"), 422, "UTF-8"),          # UTF-16 silently accepted
    (b"[" * 5000 + b"]" * 5000, 422, "nested too deeply"),                         # 400 without a reason
    (b"[" + b"1" * 5000 + b"]", 422, "digits"),                                    # 400 without a reason
]


@pytest.mark.parametrize("body,status,words", FOUND)
def test_found_bodies_are_refused_with_a_reason(live, body, status, words):
    got, doc = send_and_check(live, "POST", "/feedback", body=body, source="regression")
    assert got == status and words in json.dumps(doc["detail"]), doc


@pytest.mark.parametrize("ctype", [None, b"text/plain"])
def test_non_json_content_types_get_415(live, ctype):
    """Used to be a 500 when the bytes were not UTF-8 (FastAPI echoed them in its error)."""
    headers = [] if ctype is None else [(b"content-type", ctype)]
    got, doc = send_and_check(live, "POST", "/feedback", body=b"\xff\xfe", headers=headers, source="regression")
    assert got == 415 and "application/json" in doc["detail"]


@pytest.mark.parametrize("user", ["1_000", " 1", "١", "+1", "1.0"])
def test_query_ids_that_int_would_bend_are_refused(live, user):
    """int() reads "1_000" as 1000 and "١" as 1: an integer-ID model answered for a user the
    client did not name."""
    got, doc = send_and_check(live, "GET", "/recommend", query=f"user={quote(user)}".encode(), source="regression")
    assert got == 422 and "this model's user IDs are int, got str" in doc["detail"]  # the core's ID-kind rule


# --------------------------------------------------------------------------- schemathesis

_schema_rec = _trained()
_schema_app = create_app(_schema_rec, **LIMITS)
schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app)
schema.config.generation.update(modes=["positive", "negative"], max_examples=SCHEMA_EXAMPLES, deterministic=DERANDOMIZE,
                                database="none")


@schema.parametrize()
def test_every_operation_from_the_openapi_schema(case):
    before = _model_state(_schema_rec)
    response = case.call()
    SENT["schemathesis"] += 1
    headers = {k.lower(): v[-1] if isinstance(v, list) else v for k, v in response.headers.items()}
    check_reply(response.status_code, headers, response.content, (case.method, case.path, case.query, case.body))
    if response.status_code >= 400:
        assert _model_state(_schema_rec) == before, f"rejected {case.method} {case.path} changed the model"


# --------------------------------------------------------------------------- real server


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request and read one whole response; a reset or EOF before it is complete
    fails the test (that is the dropped connection the issue saw)."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection dropped before the response head: {request[:200]!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection dropped mid-response: {request[:200]!r}"
        rest += chunk
    return status, headers, rest[:length]


def _http(method: str, target: bytes, body: bytes = b"", ctype: bytes | None = b"application/json") -> bytes:
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if ctype is not None:
        head += b"Content-Type: " + ctype + b"\r\n"
    if method == "POST" or body:
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body


@pytest.fixture(scope="module")
def served():
    server = Server()
    try:
        warm = {"events": [{"user": u, "item": 10 + (u * 3) % 7} for u in range(1, 6)]}
        assert server.post("/feedback", warm)[0] == 200
        yield server
    finally:
        assert server.stop() == 0
        # No request may have raised inside the server, even if the client saw a reply.
        assert "Traceback" not in server.stderr_text, server.stderr_text[-3000:]


def _remote_state(sock: socket.socket) -> tuple:
    _, _, stats = _exchange(sock, _http("GET", b"/stats"))
    query = json.dumps({"users": USERS, "k": 50, "exclude_seen": False}).encode()
    _, _, tops = _exchange(sock, _http("POST", b"/recommend", query))
    return json.loads(stats), json.loads(tops)


hostile_request = st.one_of(
    damaged(feedback_body).map(lambda b: _http("POST", b"/feedback", b)),
    damaged(recommend_body).map(lambda b: _http("POST", b"/recommend", b)),
    damaged(features_body).map(lambda b: _http("POST", b"/features/items", b)),
    st.lists(st.tuples(st.sampled_from(["user", "k", "exclude_seen"]), query_value), max_size=4).map(
        lambda ps: _http("GET", b"/recommend?" + "&".join(f"{_pct(k)}={_pct(v)}" for k, v in ps).encode())),
    st.tuples(st.sampled_from([None, b"text/plain"]), damaged(feedback_body)).map(
        lambda t: _http("POST", b"/feedback", t[1], t[0])),
)


@settings(max_examples=SOCKET_EXAMPLES, derandomize=DERANDOMIZE, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=hostile_request)
def test_a_real_server_never_drops_a_hostile_request(served, request):
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        before = _remote_state(sock)
        status, headers, body = _exchange(sock, request)
        SENT["socket"] += 1
        check_reply(status, headers, body, request[:300])
        if headers.get("connection", "").lower() == "close":
            return  # said so, with a whole response (411/413 before reading a body)
        # The same connection still serves, and a rejection changed nothing.
        after = _remote_state(sock)
        if status >= 400:
            assert after == before, request[:300]


def test_zz_report_counts():
    """Not a check: the number of requests the module fuzzed, for the record (-s shows it)."""
    print(f"\nHTTP requests fuzzed: {dict(SENT)}, total {sum(SENT.values())}")
