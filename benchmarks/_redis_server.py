"""A private redis-server for the stream benchmarks: an ephemeral loopback port, persistence off
(``save ""``, ``appendonly no``: the benchmarks crash the trainer, never Redis), stopped on exit."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisServer:
    def __init__(self, directory: str | Path) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("no redis-server on PATH: apt-get install redis-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(directory), "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)
        client.close()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
        self.version = next((w.split("=")[1] for w in version if w.startswith("v=")), "?")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_bench(args, prefix: str):
    """The common start of a stream benchmark: rtrec_native imported (None when it cannot
    be, said on stdout), the environment printed, a quiet machine waited for (--wait-quiet), a
    private redis-server in a fresh scratch directory. Returns (rtrec_native, server, scratch)."""
    import tempfile

    import _common as C

    rt, err = C.import_rtrec()
    if rt is None:
        print(f"rtrec_native not importable: {err}")
        return None, None, None
    C.print_env(C.env_report(["rtrec_native", "redis"]))
    C.wait_quiet(args.wait_quiet)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=args.tmpdir))
    return rt, RedisServer(scratch), scratch
