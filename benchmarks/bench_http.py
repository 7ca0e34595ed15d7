"""Load benchmark of `rtrec serve` over loopback: a real HTTP/1.1 client, many concurrent
keep-alive connections, a mix of recommend and feedback requests, for a bounded time.

Server: `python -m rtrec_native.cli serve --host 127.0.0.1 --port <free port> --model PATH`
started as a subprocess with a pre-trained model (default 20k users x 10k items, dim 64, BPR,
AdaGrad), waited for on GET /healthz, and stopped with SIGTERM at the end (SIGKILL after 15 s),
also on errors. Traffic goes to 127.0.0.1 only.

Client: one Python process, asyncio streams speaking raw HTTP/1.1 with keep-alive (one
connection per simulated client, closed loop: a client sends its next request when the
previous answer is in). Chosen over wrk because it needs nothing installed, records the
latency of every request per endpoint (wrk's Lua hooks only give one merged histogram) and
makes the exact mix; chosen over httpx/aiohttp because neither is installed here and raw
streams cost the client less CPU. Each request is, at random:
  ~80%  GET  /recommend?user=<known user>&k=10
  ~20%  POST /feedback  {"events": [1-10 x {"user": u, "item": i}]}  (known or new IDs)
Latency = from writing the request to having read the whole response body. Errors = non-2xx
answers, broken connections, and requests over --request-timeout. Every 50th body is parsed
and checked (items/scores of length k, or applied == number of events sent).

Client and server share the machine's cores (2 here); the client's and the server's CPU
seconds per level are printed so the split is visible. A closed-loop client measures
latency under the load it generates itself (no coordinated-omission correction).

    python benchmarks/bench_http.py                   # 50, 100, 200 clients x 20 s (~1.5 min)
    python benchmarks/bench_http.py --quick           # 50 clients x 4 s, small model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

import _common as C

HOST = "127.0.0.1"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--events", type=int, default=200_000, help="training events for the served model")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--levels", default="50,100,200", help="comma-separated concurrent client counts")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    p.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each level")
    p.add_argument("--feedback-share", type=float, default=0.2)
    p.add_argument("--new-id-share", type=float, default=0.05,
                   help="share of feedback events with a never-seen user or item")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--server-threads", type=int, default=None,
                   help="--threads of rtrec serve (default: not passed, i.e. the CLI default)")
    p.add_argument("--snapshot-dir", action="store_true",
                   help="also pass --snapshot-dir (a temp dir) so the server publishes deltas while serving")
    p.add_argument("--request-timeout", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="small smoke configuration")
    C.add_quiet_arg(p)
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(users=2_000, items=1_000, events=20_000, epochs=1, levels="50", duration=4.0, warmup=1.0,
                       wait_quiet=0.0)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- #
# server
# --------------------------------------------------------------------------- #


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def http_json(port, path, timeout=5.0):
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def train_model(rt, args, path):
    ev = C.make_events(args.users, args.items, args.events, seed=args.seed, dedupe=False)
    rec = rt.Recommender(model="mf", dim=args.dim, loss="bpr", optimizer="adagrad", seed=args.seed)
    t0 = time.perf_counter()
    rec.fit(ev.users, ev.items, epochs=args.epochs)
    fit_s = time.perf_counter() - t0
    rec.save(path)
    return rec, fit_s, np.unique(ev.users)  # requests ask for users the model knows


class Server:
    def __init__(self, args, model_path, workdir):
        self.port = free_port()
        cmd = [sys.executable, "-m", "rtrec_native.cli", "serve", "--host", HOST, "--port", str(self.port),
               "--model", model_path, "--log-level", "warning"]
        if args.server_threads is not None:
            cmd += ["--threads", str(args.server_threads)]
        if args.snapshot_dir:
            cmd += ["--snapshot-dir", os.path.join(workdir, "snapshots")]
        self.cmd = cmd
        self.log_path = os.path.join(workdir, "server.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtrec serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http_json(self.port, "/healthz", timeout=1.0).get("status") == "ok":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"rtrec serve not ready within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM (graceful: uvicorn shuts down, the publisher flushes), SIGKILL if stuck."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                rc = "killed after SIGTERM timeout"
        self._log.close()
        return rc


# --------------------------------------------------------------------------- #
# client
# --------------------------------------------------------------------------- #


class Stats:
    def __init__(self):
        self.lat = {"GET /recommend": [], "POST /feedback": []}
        self.errors = {"GET /recommend": 0, "POST /feedback": 0}
        self.error_kinds = {}
        self.checked = 0
        self.check_failures = []
        self.events_acked = 0
        self.recording = False

    def error(self, endpoint, kind):
        if self.recording:
            self.errors[endpoint] += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close, chunked = 0, False, False
    for ln in lines[1:]:
        name, _, value = ln.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(length) if length else b""
    return status, body, close


async def client(cid, port, args, deadline, stats, known_users, n_items):
    rng = np.random.default_rng(args.seed * 1000 + cid)
    reader = writer = None
    k = args.k
    host_hdr = f"Host: {HOST}:{port}\r\n"
    n = 0
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError as exc:
                stats.error("GET /recommend", f"connect: {type(exc).__name__}")
                await asyncio.sleep(0.05)
                continue
        n += 1
        if rng.random() < args.feedback_share:
            endpoint = "POST /feedback"
            m = int(rng.integers(1, 11))
            evs = []
            for _ in range(m):
                if rng.random() < args.new_id_share:
                    u, i = int(rng.integers(10**9, 2 * 10**9)), int(rng.integers(10**9, 2 * 10**9))
                else:
                    u, i = int(rng.choice(known_users)), int(rng.integers(0, n_items))
                evs.append({"user": u, "item": i})
            body = json.dumps({"events": evs}).encode()
            req = (f"POST /feedback HTTP/1.1\r\n{host_hdr}Content-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:
            endpoint = "GET /recommend"
            m = 0
            u = int(rng.choice(known_users))
            req = f"GET /recommend?user={u}&k={k} HTTP/1.1\r\n{host_hdr}\r\n".encode()
        t0 = time.perf_counter()
        try:
            writer.write(req)
            status, resp, close = await asyncio.wait_for(read_response(reader), args.request_timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError) as exc:
            stats.error(endpoint, f"{type(exc).__name__}")
            writer.close()
            reader = writer = None
            continue
        dt = time.perf_counter() - t0
        if not stats.recording:
            pass
        elif 200 <= status < 300:
            stats.lat[endpoint].append(dt)
            stats.events_acked += m
            if n % 50 == 0:
                check_body(stats, endpoint, resp, k, m)
        else:
            stats.error(endpoint, f"HTTP {status}: {resp[:200]!r}")
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def check_body(stats, endpoint, resp, k, m):
    stats.checked += 1
    try:
        doc = json.loads(resp)
        if endpoint == "POST /feedback":
            ok = doc == {"applied": m}
        else:
            ok = len(doc["items"]) == k and len(doc["scores"]) == k
        if not ok:
            stats.check_failures.append(resp[:200])
    except Exception as exc:
        stats.check_failures.append(f"{exc!r}: {resp[:200]!r}")


async def run_level(port, args, clients, known_users, n_items):
    stats = Stats()
    t_start = time.monotonic()
    deadline = t_start + args.warmup + args.duration
    tasks = [asyncio.create_task(client(c, port, args, deadline, stats, known_users, n_items)) for c in range(clients)]
    await asyncio.sleep(args.warmup)
    stats.recording = True
    t0 = time.perf_counter()
    await asyncio.gather(*tasks)
    stats.recording = False
    return stats, time.perf_counter() - t0


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #


def main(argv=None):
    args = parse_args(argv)
    rt, err = C.import_rtrec()
    env = C.env_report(["rtrec_native", "fastapi", "uvicorn", "h11", "starlette", "pydantic"])
    C.print_env(env)
    for mod in ("httptools", "uvloop"):
        try:
            __import__(mod)
            present = True
        except ImportError:
            present = False
        print(f"- {mod}: {'installed' if present else 'absent (uvicorn uses the pure-Python fallback)'}")
    print(f"- load average: {os.getloadavg()}")
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return 1
    env["busy_before"] = C.wait_quiet(args.wait_quiet)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    failed = False
    with tempfile.TemporaryDirectory(prefix="rtrec-bench-http-") as workdir:
        model_path = os.path.join(workdir, "model.rtrec")
        rec, fit_s, known_users = train_model(rt, args, model_path)
        print(f"## config\nmodel: {rec.n_users} users x {rec.n_items} items, dim {args.dim}, BPR, AdaGrad, fitted "
              f"on {args.events} events x {args.epochs} epochs ({fit_s:.1f} s); levels {levels} clients x "
              f"{args.duration} s (+{args.warmup} s warm-up); mix {100 * (1 - args.feedback_share):.0f}% GET "
              f"/recommend k={args.k}, {100 * args.feedback_share:.0f}% POST /feedback (1-10 events, "
              f"{100 * args.new_id_share:.0f}% new IDs)")
        del rec
        server = Server(args, model_path, workdir)
        print(f"server: {' '.join(server.cmd)}\n", flush=True)
        rows, results = [], []
        try:
            server.wait_ready()
            stats0 = http_json(server.port, "/stats")
            meter = C.NoiseMeter().start()
            t_meter, srv_meter = time.monotonic(), proc_cpu_seconds(server.proc.pid)
            for clients in levels:
                srv_cpu0, cli_cpu0 = proc_cpu_seconds(server.proc.pid), time.process_time()
                st, wall = asyncio.run(run_level(server.port, args, clients, known_users, args.items))
                srv_cpu = proc_cpu_seconds(server.proc.pid) - srv_cpu0
                cli_cpu = time.process_time() - cli_cpu0
                n_ok = sum(len(v) for v in st.lat.values())
                n_err = sum(st.errors.values())
                if n_err or st.check_failures or n_ok == 0:
                    failed = True
                res = {"clients": clients, "wall_s": wall, "ok": n_ok, "errors": dict(st.errors),
                       "error_kinds": st.error_kinds, "checked": st.checked, "check_failures": st.check_failures[:5],
                       "server_cpu_s": srv_cpu, "client_cpu_s": cli_cpu, "events_acked": st.events_acked,
                       "endpoints": {}}
                for ep, lat in st.lat.items():
                    a = np.asarray(lat) * 1e3
                    res["endpoints"][ep] = {"n": len(a), "rps": len(a) / wall, "p50_ms": C.percentile(a, 50),
                                            "p90_ms": C.percentile(a, 90), "p99_ms": C.percentile(a, 99),
                                            "max_ms": float(a.max()) if len(a) else float("nan")}
                results.append(res)
                for ep, e in res["endpoints"].items():
                    rows.append([clients, ep, e["n"], f"{e['rps']:.0f}", f"{e['p50_ms']:.1f}", f"{e['p90_ms']:.1f}",
                                 f"{e['p99_ms']:.1f}", f"{e['max_ms']:.0f}", st.errors[ep], ""])
                rows.append([clients, "all", n_ok, f"{n_ok / wall:.0f}", "", "", "", "", n_err,
                             f"server {srv_cpu / wall:.2f} / client {cli_cpu / wall:.2f} cores"])
                print(f"- {clients} clients: {n_ok / wall:.0f} req/s, {n_err} errors {st.error_kinds or ''}; "
                      f"bodies checked {st.checked}, bad {len(st.check_failures)}", flush=True)
            noise = meter.stop()
            # The server is our child but not yet waited for: its CPU is not noise.
            elapsed = time.monotonic() - t_meter
            srv_share = (proc_cpu_seconds(server.proc.pid) - srv_meter) / (elapsed * os.cpu_count())
            noise = max(0.0, noise - srv_share)
            stats1 = http_json(server.port, "/stats")
            acked = sum(r["events_acked"] for r in results)
            upd = stats1.get("updates", 0) - stats0.get("updates", 0)
            print(f"\nserver /stats: updates {stats0.get('updates')} -> {stats1.get('updates')} (+{upd}); "
                  f"users {stats0.get('n_users')} -> {stats1.get('n_users')}; events acknowledged in timed "
                  f"phases {acked} (warm-up events are applied but not counted)")
        except Exception as exc:
            failed = True
            print(f"benchmark failed: {type(exc).__name__}: {exc}")
            noise = float("nan")
        finally:
            rc = server.stop()
            log = server.log_tail(200)
        print(f"server stopped with SIGTERM: exit status {rc}")
        tracebacks = log.count("Traceback")
        if tracebacks or (rc not in (0, -signal.SIGTERM)):
            failed = True
            print(f"server log ({tracebacks} tracebacks):\n{log}")

    print(f"\n## rtrec serve under load (loopback; {args.duration:.0f} s per level; latency in ms; "
          "client and server share the 2 cores)")
    C.print_table(["clients", "endpoint", "ok requests", "req/s", "p50", "p90", "p99", "max", "errors", "CPU"], rows)
    print(C.report_noise(noise))
    print(f"- load average at end: {os.getloadavg()}")
    C.dump_json(args.json, {"bench": "http", "config": vars(args), "env": env, "results": results,
                            "other_load_during": noise})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
