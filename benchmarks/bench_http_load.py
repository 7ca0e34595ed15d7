"""Hostile load on `rtrec serve` over loopback: many concurrent clients, a share of malformed
requests, for a bounded time; then the server's books are checked.

Server: `python -m rtrec_native.cli serve --host 127.0.0.1 --port <free port> --model PATH`,
a subprocess started from a model trained here (squared loss, so that every event is one
gradient step: see "Accounting"), waited for on GET /healthz and stopped with SIGTERM at the
end (SIGKILL after 15 s), also on errors. Traffic goes to 127.0.0.1 only, and the run stops
by itself after --seconds.

Client: one process, asyncio streams speaking raw HTTP/1.1 with keep-alive, one connection
per client, closed loop. Each request is, at random:
  --malformed (10%)  one of the hostile requests in MALFORMED (non-finite numbers, duplicate
                     keys, truncated JSON, invalid UTF-8, lone surrogates, wrong types, deep
                     nesting, over-limit k / Content-Length, non-JSON content type, bad IDs),
                     which must get a 4xx with a JSON "detail";
  --feedback (30%)   POST /feedback with 1-10 events (ratings 1-5, known or new IDs): 200;
  the rest           GET /recommend?user=<known>&k=10 (4 in 5) or POST /recommend for 1-8
                     users: 200.
Counted as failures: any 5xx, a connection reset or closed before a whole response, a
timeout, a status other than the expected class, a 4xx without a JSON detail. A server that
answers (e.g. 413) with "Connection: close" has not dropped anything: the client reconnects.

Accounting: the events the server acknowledged ({"applied": n} in 200 replies) must equal
(1) the growth of /stats "events_applied" (the service's own count of acknowledged events)
and (2) the growth of updates + skipped_updates + not_admitted: under a pointwise loss
(squared, logistic) every admitted event with weight > 0 is exactly one gradient step,
applied or skipped, and every other event is counted as not admitted. ("updates" alone is
not events: under BPR it counts one step per sampled negative and none for a label <= 0.)

    python benchmarks/bench_http_load.py                  # 200 clients, 60 s
    python benchmarks/bench_http_load.py --seconds 10 --clients 50
    python benchmarks/bench_http_load.py --quick          # 20 clients, 3 s, small model
Exit status 0 when nothing failed and the books balance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

import numpy as np

import _common as C
from bench_http import free_port, proc_cpu_seconds, read_response  # the plain load benchmark's helpers

HOST = "127.0.0.1"  # loopback only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="length of the load phase (default: %(default)s)")
    p.add_argument("--clients", type=int, default=200, help="concurrent keep-alive clients (default: %(default)s)")
    p.add_argument("--malformed", type=float, default=0.10, help="share of hostile requests (default: %(default)s)")
    p.add_argument("--feedback", type=float, default=0.30, help="share of POST /feedback (default: %(default)s)")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--events", type=int, default=200_000, help="training events of the starting model")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--quick", action="store_true", help="smoke configuration: 20 clients, 3 s, small model")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(seconds=3.0, clients=20, users=2_000, items=500, events=20_000)
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or not 0 <= args.malformed <= 1 or not 0 <= args.feedback <= 1:
        p.error("--seconds > 0, --clients >= 1, --malformed and --feedback in [0, 1]")
    return args


# --------------------------------------------------------------------------- requests


def http(method: str, target: str, body: bytes = b"", ctype: str | None = "application/json",
         length: str | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {HOST}\r\n"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {length if length is not None else len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# name -> request bytes. Every one must be answered with a 4xx and a JSON "detail".
MALFORMED: dict[str, bytes] = {
    "number outside float range": http("POST", "/feedback", b'{"events":[{"user":1e400,"item":2}]}'),
    "NaN literal": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"label":NaN}]}'),
    "Infinity weight": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"label":3,"weight":Infinity}]}'),
    "duplicate key": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"user":3,"label":4}]}'),
    "truncated JSON": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"lab'),
    "invalid UTF-8": http("POST", "/feedback", b'{"events":[{"user":"\xff\xfe","item":2,"label":4}]}'),
    "lone surrogate key": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"\\ud800":1}]}'),
    "wrong types": http("POST", "/feedback", b'{"events":[{"user":[1],"item":{"a":1},"label":"x"}]}'),
    "no events": http("POST", "/feedback", b'{"events":[]}'),
    "deep nesting": http("POST", "/feedback", b"[" * 3000 + b"]" * 3000),
    "text/plain body": http("POST", "/feedback", b'{"events":[{"user":1,"item":2,"label":4}]}', ctype="text/plain"),
    "Content-Length over the limit": http("POST", "/feedback", b"", length=str(2 << 20)),  # 413, then close
    "k over the limit": http("GET", "/recommend?user=1&k=100000"),
    "user not an integer": http("GET", "/recommend?user=1_000&k=5"),
    "NaN user in a batch": http("POST", "/recommend", b'{"users":[NaN],"k":3}'),
    "features not lists": http("POST", "/features/items", b'{"ids":[1],"features":["genre=x"]}'),
}
MALFORMED_NAMES = list(MALFORMED)


@dataclass
class Tally:
    latency: dict[str, list[float]] = field(default_factory=lambda: {"recommend": [], "batch": [], "feedback": [],
                                                                     "malformed": []})
    failures: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    events_acked: int = 0
    events_unconfirmed: int = 0  # sent in requests that failed: the server may or may not have applied them
    closes: int = 0

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {detail[:300]}")


def good_request(rng: np.random.Generator, args: argparse.Namespace, roll: float) -> tuple[str, bytes, int]:
    """(kind, request, events in it)."""
    if roll < args.malformed + args.feedback:
        n = int(rng.integers(1, 11))
        events = []
        for _ in range(n):
            new = rng.random() < 0.1
            user = int(rng.integers(10**9, 2 * 10**9)) if new else int(rng.integers(0, args.users))
            item = int(rng.integers(10**9, 2 * 10**9)) if new else int(rng.integers(0, args.items))
            event = {"user": user, "item": item, "label": float(rng.integers(1, 6))}
            if rng.random() < 0.3:
                event["weight"] = round(float(rng.uniform(0.2, 3.0)), 2)  # > 0: one step per event
            events.append(event)
        return "feedback", http("POST", "/feedback", json.dumps({"events": events}).encode()), n
    if rng.random() < 0.8:
        return "recommend", http("GET", f"/recommend?user={int(rng.integers(0, args.users))}&k=10"), 0
    users = [int(u) for u in rng.integers(0, args.users, int(rng.integers(1, 9)))]
    return "batch", http("POST", "/recommend", json.dumps({"users": users, "k": 10}).encode()), 0


def check(kind: str, status: int, body: bytes, sent_events: int, tally: Tally, name: str) -> None:
    tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
    if status >= 500:
        tally.fail("5xx", f"{status} for {name}: {body[:200]!r}")
        return
    if kind == "malformed":
        if not 400 <= status < 500:
            tally.fail("malformed not refused", f"{status} for {name}: {body[:200]!r}")
            return
        try:
            if not json.loads(body)["detail"]:
                raise ValueError("empty detail")
        except (ValueError, KeyError, TypeError) as exc:
            tally.fail("4xx without a JSON detail", f"{name}: {exc!r}: {body[:200]!r}")
        return
    if status != 200:
        tally.fail("valid request refused", f"{status} for {kind}: {body[:200]!r}")
        return
    if kind == "feedback":
        reply = json.loads(body)
        if reply != {"applied": sent_events}:
            tally.fail("wrong feedback reply", f"{reply} for {sent_events} events")
        else:
            tally.events_acked += sent_events


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):  # the peer may be gone already
        await writer.wait_closed()


async def client(cid: int, port: int, args: argparse.Namespace, deadline: float, tally: Tally) -> None:
    rng = np.random.default_rng(args.seed * 100_003 + cid)
    reader = writer = None
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError as exc:
                tally.fail("connect failed", repr(exc))
                await asyncio.sleep(0.05)
                continue
        roll = rng.random()
        if roll < args.malformed:
            kind, name = "malformed", MALFORMED_NAMES[int(rng.integers(len(MALFORMED_NAMES)))]
            request, events = MALFORMED[name], 0
        else:
            (kind, request, events), name = good_request(rng, args, roll), ""
        started = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
            status, body, close = await asyncio.wait_for(read_response(reader), args.request_timeout)
        except asyncio.TimeoutError:
            tally.fail("timeout", f"{kind} {name}")
            tally.events_unconfirmed += events
            close = True
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            tally.fail("connection reset or closed mid-request", f"{kind} {name}: {exc!r}")
            tally.events_unconfirmed += events
            close = True
        else:
            tally.latency[kind].append(time.perf_counter() - started)
            check(kind, status, body, events, tally, name)
            tally.closes += close
        if close:
            await close_quietly(writer)
            reader = writer = None
    if writer is not None:
        await close_quietly(writer)


async def load(port: int, args: argparse.Namespace) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    deadline = time.monotonic() + args.seconds
    await asyncio.gather(*(client(c, port, args, deadline, tally) for c in range(args.clients)))
    return tally, time.perf_counter() - started


# --------------------------------------------------------------------------- server


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def train(rt, args: argparse.Namespace, path: str) -> str:
    rng = np.random.default_rng(args.seed)
    users = rng.integers(0, args.users, args.events)
    items = np.minimum(rng.zipf(1.3, args.events) - 1, args.items - 1)
    ratings = rng.integers(1, 6, args.events).astype(np.float32)
    rec = rt.Recommender(model="mf", dim=args.dim, loss="squared", optimizer="adagrad", seed=args.seed)
    rec.fit(users, items, ratings, epochs=1)
    rec.save(path)
    return f"{rec.n_users} users x {rec.n_items} items, dim {args.dim}, squared loss, AdaGrad"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    C.print_env(C.env_report(["rtrec_native", "fastapi", "uvicorn", "starlette", "pydantic"]))
    with tempfile.TemporaryDirectory(prefix="rtrec-bench-load-") as workdir:
        model_path = os.path.join(workdir, "model.rtrec")
        described = train(rt, args, model_path)
        port = free_port()
        cmd = [sys.executable, "-m", "rtrec_native.cli", "serve", "--host", HOST, "--port", str(port),
               "--model", model_path, "--log-level", "warning"]
        log_path = os.path.join(workdir, "server.log")
        print(f"## config\nmodel: {described}; {args.clients} clients x {args.seconds:g} s; "
              f"{100 * args.malformed:.0f}% malformed, {100 * args.feedback:.0f}% POST /feedback (1-10 events), "
              f"rest GET /recommend k=10 (80%) / POST /recommend (20%)\nserver: {' '.join(cmd)}\n", flush=True)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get_json(port, "/healthz").get("status") == "ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("rtrec serve did not start")
                time.sleep(0.1)
            before = get_json(port, "/stats")
            server_cpu0 = proc_cpu_seconds(proc.pid)
            tally, wall = asyncio.run(load(port, args))
            server_cpu = proc_cpu_seconds(proc.pid) - server_cpu0
            after = get_json(port, "/stats")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait(5)
        with open(log_path, errors="replace") as fh:
            server_log = fh.read()

    def grew(*keys: str) -> int:
        return sum(after[k] - before[k] for k in keys)

    served = {k: len(v) for k, v in tally.latency.items()}
    total = sum(served.values())
    good = [x for k, v in tally.latency.items() if k != "malformed" for x in v]
    steps = grew("updates", "skipped_updates", "not_admitted")
    acknowledged = grew("events_applied")
    balanced = tally.events_unconfirmed == 0 and tally.events_acked == acknowledged == steps
    tracebacks = server_log.count("Traceback")
    resets = tally.failures.get("connection reset or closed mid-request", 0)
    fives = tally.failures.get("5xx", 0)

    rows = []
    for kind in ("recommend", "batch", "feedback", "malformed"):
        ms = np.asarray(tally.latency[kind]) * 1e3
        rows.append([kind, served[kind], f"{served[kind] / wall:.0f}", f"{C.percentile(ms, 50):.1f}",
                     f"{C.percentile(ms, 99):.1f}"])
    ms = np.asarray(good) * 1e3
    rows.append(["all valid", len(good), f"{len(good) / wall:.0f}", f"{C.percentile(ms, 50):.1f}",
                 f"{C.percentile(ms, 99):.1f}"])
    print(f"## rtrec serve under hostile load (loopback; {args.clients} clients; {wall:.1f} s; latency in ms)")
    C.print_table(["requests", "answered", "req/s", "p50", "p99"], rows)
    print(f"\ntotal {total} requests, {total / wall:.0f} req/s; statuses {dict(sorted(tally.statuses.items()))}; "
          f"connections closed by the server after a whole response: {tally.closes}")
    print(f"failures: 5xx {fives}, connection resets {resets}, all {dict(tally.failures) or 0}")
    for example in tally.examples:
        print(f"  - {example}")
    print(f"events acknowledged to clients {tally.events_acked}; /stats events_applied +{acknowledged}; "
          f"updates + skipped_updates + not_admitted +{steps}; unconfirmed (failed requests) "
          f"{tally.events_unconfirmed} -> {'balanced' if balanced else 'NOT BALANCED'}")
    print(f"server CPU {server_cpu / wall:.2f} cores; server exit status {rc}; tracebacks in its log {tracebacks}")
    if tracebacks:
        print(server_log[-4000:])
    C.dump_json(args.json, {"bench": "http_load", "config": vars(args), "wall_s": wall, "answered": served,
                            "statuses": tally.statuses, "failures": tally.failures, "examples": tally.examples,
                            "events_acked": tally.events_acked, "events_applied": acknowledged, "steps": steps,
                            "balanced": balanced, "server_exit": rc, "tracebacks": tracebacks})
    ok = not tally.failures and balanced and not tracebacks and rc in (0, -signal.SIGTERM)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
