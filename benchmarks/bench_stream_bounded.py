"""A bounded log: 2 producers write 1M single-event entries while one `rtrec consume` (trimming
on, its default) learns them; the stream's length is sampled every 0.2 s.

The claim: the stream holds what the trainer has not acknowledged yet (not read, or learned and
waiting for its durable delta) plus at most a few read batches (trimming runs about every
second). So each sample reports XLEN, the group's lag + pending (what it still needs), and the
excess XLEN - (lag + pending). Also: learned == produced, and the length at the end.

    python benchmarks/bench_stream_bounded.py           # 1M events (~1 min)
    python benchmarks/bench_stream_bounded.py --quick   # 100k events
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time

import _common as C
from _redis_server import start_bench

STREAM = "bench:events"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000, help="the trainer's --batch-size")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="100k events")
    C.add_quiet_arg(p)
    args = p.parse_args(argv)
    if args.quick:
        args.events = 100_000
    return args


def producer_main(url, first, n, barrier):
    from rtrec_native.stream import Producer

    producer = Producer(url, STREAM)
    barrier.wait()
    for start in range(first, first + n, 10_000):
        end = min(start + 10_000, first + n)
        producer.send_fields([{"user": str(k % 200_000), "item": str(k % 20_000)} for k in range(start, end)])


def main(argv=None):
    args = parse_args(argv)
    rt, server, scratch = start_bench(args, "rtrec-bench-bounded-")
    if rt is None:
        return 1
    import redis
    r = redis.Redis.from_url(server.url)
    print(f"redis-server {server.version} (persistence off); {args.events:,} events from 2 producers; "
          f"`rtrec consume --batch-size {args.batch}` (trimming on: the default)\n", flush=True)
    trainer = subprocess.Popen([sys.executable, "-m", "rtrec_native.cli", "consume", "--redis", server.url, "--stream",
                                STREAM, "--snapshot-dir", str(scratch / "model"), "--batch-size", str(args.batch),
                                "--idle-exit", "3", "--json", "--log-level", "error", "--family", "mf", "--loss",
                                "bpr", "--dim", "32", "--threads", "1", "--seed", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    half = args.events // 2
    producers = [ctx.Process(target=producer_main, args=(server.url, first, n, barrier))
                 for first, n in ((0, half), (half, args.events - half))]
    for proc in producers:
        proc.start()
    barrier.wait()
    began = time.monotonic()
    samples = []
    while trainer.poll() is None:
        try:  # one MULTI: the length and the group's state at the same moment
            length, groups = r.pipeline(transaction=True).xlen(STREAM).xinfo_groups(STREAM).execute()
            info = next((g for g in groups if g["name"] == b"trainers"), None)
        except redis.exceptions.ResponseError:
            info = None
        if info is not None and info["lag"] is not None:
            needed = int(info["lag"]) + int(info["pending"])
            samples.append({"t": round(time.monotonic() - began, 2), "xlen": length, "needed": needed,
                            "excess": length - needed})
        time.sleep(0.2)
    for proc in producers:
        proc.join()
    out, errors = trainer.communicate()
    summary = json.loads(out) if trainer.returncode == 0 else {"error": errors}
    final = r.xlen(STREAM)
    worst = max(samples, key=lambda s: s["excess"]) if samples else None
    longest = max(samples, key=lambda s: s["xlen"]) if samples else None
    print("| t (s) | XLEN | lag + pending | excess |\n|---|---|---|---|")
    step = max(1, len(samples) // 12)
    for s in samples[::step]:
        print(f"| {s['t']} | {s['xlen']:,} | {s['needed']:,} | {s['excess']:,} |")
    print(f"\nlongest stream: {longest['xlen']:,} entries at {longest['t']} s (the trainer still needed "
          f"{longest['needed']:,} of them); largest excess over what it needed: {worst['excess']:,} entries "
          f"({worst['excess'] / args.batch:.1f} read batches) at {worst['t']} s; at the end: {final:,} entries")
    print(f"learned {summary.get('learned', 0):,} of {args.events:,} produced; trimmed {summary.get('trimmed', 0):,}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"events": args.events, "samples": samples, "final_xlen": final, "summary": summary}, fh,
                      indent=2)
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if summary.get("learned") == args.events else 1


if __name__ == "__main__":
    sys.exit(main())
