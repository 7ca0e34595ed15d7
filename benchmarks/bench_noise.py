"""Noisy feedback: how much does each kind of corruption cost real-time HitRate@10, and how
much do the core's defences (dedup_window, max_user_rate, loss="huber", adaptive_step) win
back?

Streams: MovieLens ml-latest-small (../shared; research use only; mf with squared loss on
the ratings, or two_tower) and the built-in synthetic stream (0/1 labels; mf with BPR, or
two_tower). Each is corrupted in known ways:

* flip10/20/30: that share of the events (chosen at random) get the opposite label
  (ratings r -> 5.5 - r, so 5 <-> 0.5 and 4 <-> 1.5; clicks y -> 1 - y);
* bot: at the middle of the stream a new user sends 10,000 events on one mid-popularity
  item with the top label, 100 per second of event time;
* dup: 20% of the events arrive twice in a row (exact duplicates, same timestamp);
* ooo: bursts of 50 consecutive events (about 10% of the stream) arrive 1,000 events late,
  with their old timestamps.

Protocol: the realtime policy of ``rtrec_native.evaluation.prequential`` (warm-up fit on the
first 20% of the stream, 5 epochs; then each micro-batch of 10 events is ranked, then
learned with ``update``), except that what counts as a hit comes from the clean stream: a
trial is a user's first event on an item whose *true* label counts as liked (>= 4 for
ratings, 1 for clicks), injected events (bot, duplicates) are never trials, and the model
learns the corrupted labels. So the clean run and a corrupted run rank the same trials.
HitRate@10 excludes the items the model has seen the user consume.

The bot's effect on everybody else: right before its first event and right after its last,
the top-10 of every other user seen so far; "moved" is how many of a user's 10 items
changed (the bot is the only thing learned in between).

    python benchmarks/bench_noise.py                       # MovieLens + synthetic, mf
    python benchmarks/bench_noise.py --families mf two_tower
    python benchmarks/bench_noise.py --datasets movielens --scenarios clean flip20 bot
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import _common as C
from _common import find_dataset

MOVIELENS = find_dataset("ml-latest-small") / "ratings.csv"
SCENARIOS = ("clean", "flip10", "flip20", "flip30", "bot", "dup", "ooo")
BATCH, K, WARMUP, EPOCHS = 10, 10, 0.2, 5
BOT_EVENTS, BOT_RATE = 10_000, 100.0
DEDUP_WINDOW, MAX_USER_RATE = 60.0, 5.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=MOVIELENS, help="a MovieLens-style ratings.csv")
    p.add_argument("--datasets", nargs="+", default=["movielens", "synthetic"], choices=("movielens", "synthetic"))
    p.add_argument("--families", nargs="+", default=["mf"], choices=("mf", "two_tower"))
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- streams


class Stream:
    """A stream in arrival order: what the model learns (users, items, labels, times) and
    what the evaluation knows (the clean label, whether the event was injected)."""

    def __init__(self, users, items, labels, times, truth=None, injected=None, bot=None):
        self.users, self.items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        self.labels, self.times = np.asarray(labels, np.float32), np.asarray(times, np.float64)
        self.truth = self.labels.copy() if truth is None else np.asarray(truth, np.float32)
        self.injected = np.zeros(len(self.users), bool) if injected is None else injected
        self.bot = bot  # (first, end) positions of the bot's events
        self.bot_item = None

    def __len__(self):
        return len(self.users)

    def take(self, order):
        return Stream(self.users[order], self.items[order], self.labels[order], self.times[order],
                      self.truth[order], self.injected[order])


def load(rt, name, args):
    if name == "movielens":
        from rtrec_native.data import load_events

        events, _ = load_events(args.data)
        return Stream(events.users, events.items, events.labels, events.timestamps), 4.0, "ratings"
    from rtrec_native.datasets import synthetic_stream

    events = synthetic_stream(seed=args.seed)
    return Stream(events.users, events.items, events.labels, events.timestamps), 1.0, "clicks"


def corrupt(clean: Stream, scenario: str, kind: str, rng) -> Stream:
    n = len(clean)
    if scenario == "clean":
        return clean
    if scenario.startswith("flip"):
        share = int(scenario[4:]) / 100
        out = clean.take(np.arange(n))
        flip = rng.random(n) < share
        out.labels[flip] = (5.5 - out.labels[flip]) if kind == "ratings" else (1.0 - out.labels[flip])
        return out
    if scenario == "dup":
        twice = rng.random(n) < 0.2
        order = np.repeat(np.arange(n), np.where(twice, 2, 1))
        out = clean.take(order)
        out.injected[1:] = order[1:] == order[:-1]  # the second copy of a pair
        return out
    if scenario == "ooo":
        starts = np.flatnonzero(rng.random(n - 1100) < 0.002)  # ~200 bursts per 100k events
        late = np.zeros(n, bool)
        moved = {}
        for s in starts:
            if late[s : s + 50].any():
                continue
            late[s : s + 50] = True
            moved.setdefault(min(n - 1, s + 1050), []).extend(range(s, s + 50))
        order = []
        for i in range(n):
            if not late[i]:
                order.append(i)
            order.extend(moved.get(i, []))
        return clean.take(np.array(order))
    if scenario == "bot":
        at = (n // 2) // BATCH * BATCH
        items, counts = np.unique(clean.items[:at], return_counts=True)
        target = items[np.argsort(-counts, kind="stable")[min(500, len(items) - 1)]]  # mid-popularity
        top = clean.labels.max()
        t0 = clean.times[at - 1]
        bot_user = clean.users.max() + 1
        times = t0 + np.arange(BOT_EVENTS) / BOT_RATE
        parts = [clean.take(np.arange(at)),
                 Stream(np.full(BOT_EVENTS, bot_user), np.full(BOT_EVENTS, target), np.full(BOT_EVENTS, top), times,
                        injected=np.ones(BOT_EVENTS, bool)),
                 clean.take(np.arange(at, n))]
        out = Stream(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("users", "items", "labels", "times")),
                     truth=np.concatenate([p.truth for p in parts]),
                     injected=np.concatenate([p.injected for p in parts]), bot=(at, at + BOT_EVENTS))
        out.bot_item = target
        return out
    raise ValueError(scenario)


def trials(stream: Stream, threshold: float) -> np.ndarray:
    """First (user, item) events of the clean sense whose true label is liked."""
    pair = stream.users * (stream.items.max() + 1) + stream.items
    real = np.flatnonzero(~stream.injected)
    _, first = np.unique(pair[real], return_index=True)
    is_first = np.zeros(len(stream), bool)
    is_first[real[first]] = True
    return is_first & (stream.truth >= threshold)


# --------------------------------------------------------------------------- replay


def replay(rt, stream: Stream, threshold: float, params: dict) -> dict:
    rec = rt.Recommender(**params)
    n = len(stream)
    warm = int(n * WARMUP) // BATCH * BATCH
    rec.fit(stream.users[:warm], stream.items[:warm], labels=stream.labels[:warm], timestamps=stream.times[:warm],
            epochs=EPOCHS)
    is_trial = trials(stream, threshold)
    hits = n_trials = 0
    moved = None
    before = None
    began = time.perf_counter()
    for lo in range(warm, n, BATCH):
        hi = min(n, lo + BATCH)
        if stream.bot is not None and lo in stream.bot[:2]:
            others = np.unique(stream.users[:lo][~stream.injected[:lo]])
            top = rec.recommend_batch(others, k=K)
            if lo == stream.bot[0]:
                before = top
            else:
                moved = [K - len(set(a[: ca]) & set(b[: cb]))
                         for a, ca, b, cb in zip(before.ids, before.counts, top.ids, top.counts, strict=True)]
                bot_item_share = float(np.mean([np.any(b[:cb] == stream.bot_item)
                                                for b, cb in zip(top.ids, top.counts, strict=True)]))
        pos = np.flatnonzero(is_trial[lo:hi]) + lo
        if pos.size:
            top = rec.recommend_batch(stream.users[pos], k=K)
            for row, count, item in zip(top.ids, top.counts, stream.items[pos], strict=True):
                hits += bool(np.any(row[:count] == item))
            n_trials += pos.size
        rec.update(stream.users[lo:hi], stream.items[lo:hi], labels=stream.labels[lo:hi],
                   timestamps=stream.times[lo:hi])
    stats = rec.stats()
    out = {"hitrate@10": hits / max(n_trials, 1), "trials": n_trials, "seconds": time.perf_counter() - began,
           "deduplicated": stats["deduplicated"], "rate_limited": stats["rate_limited"]}
    if moved is not None:
        moved = np.array(moved)
        out.update(moved_max=int(moved.max()), moved_mean=float(moved.mean()),
                   moved_over_1=float((moved > 1).mean()), bot_item_in_top10=bot_item_share)
    return out


def settings(family: str, kind: str) -> list[tuple[str, dict]]:
    """(name, Recommender arguments): the options off, each robust loss/step on its own
    (mf on ratings), and all on. num_threads=1: the warm-up fit is then deterministic, so
    two runs differ only by what they learn."""
    base = {"model": family, "seed": 0, "num_threads": 1}
    if family == "mf":
        base["loss"] = "squared" if kind == "ratings" else "bpr"
    # 60 s catches retries and bots; 5 events/s per user limits 1.1% of MovieLens's events
    # fed through update (people rate in bursts: 1/s would limit 15.7%).
    guard = {"dedup_window": DEDUP_WINDOW, "max_user_rate": MAX_USER_RATE}
    out = [("off", base)]
    if family == "mf" and kind == "ratings":
        out += [("huber", {**base, "loss": "huber"}),
                ("huber+adaptive", {**base, "loss": "huber", "adaptive_step": True})]
        return [*out, ("all on", {**base, "loss": "huber", "adaptive_step": True, **guard})]
    return [*out, ("all on", {**base, **guard})]


def main(argv=None):
    args = parse_args(argv)
    rt, reason = C.import_rtrec()
    if rt is None:
        raise SystemExit(f"rtrec_native is not importable: {reason}")
    C.print_env(C.env_report())
    rows = []
    for dataset in args.datasets:
        clean, threshold, kind = load(rt, dataset, args)
        for family in args.families:
            for setting, params in settings(family, kind):
                base_hr = None
                for scenario in args.scenarios:
                    stream = corrupt(clean, scenario, kind, np.random.default_rng(args.seed + 17))
                    result = replay(rt, stream, threshold, params)
                    if scenario == "clean":
                        base_hr = result["hitrate@10"]
                    change = (result["hitrate@10"] / base_hr - 1) if base_hr else float("nan")
                    row = {"dataset": dataset, "family": family, "options": setting, "scenario": scenario,
                           "params": {k: v for k, v in params.items() if k not in ("model", "seed")},
                           "vs_clean": change, **result}
                    rows.append(row)
                    bot = (f"  moved max {row['moved_max']} mean {row['moved_mean']:.2f} >1: {row['moved_over_1']:.1%}"
                           f" bot item in {row['bot_item_in_top10']:.1%}" if "moved_max" in row else "")
                    print(f"{dataset:9} {family:9} {setting:14} {scenario:6} HR@10 {result['hitrate@10']:.4f} "
                          f"({change:+.1%} vs clean) dedup {result['deduplicated']:,}"
                          f" limited {result['rate_limited']:,}"
                          f" [{result['seconds']:.0f} s]{bot}", flush=True)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def table(rows) -> str:
    lines = ["| data | family | options | scenario | HitRate@10 | vs clean | deduplicated | rate limited "
             "| bot: others' top-10 moved (max / mean / share > 1) | bot's item in others' top-10 |",
             "|---|---|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        bot = (f"{r['moved_max']} / {r['moved_mean']:.2f} / {r['moved_over_1']:.1%} | {r['bot_item_in_top10']:.1%}"
               if "moved_max" in r else " | ")
        lines.append(f"| {r['dataset']} | {r['family']} | {r['options']} | {r['scenario']} | {r['hitrate@10']:.4f} "
                     f"| {r['vs_clean']:+.1%} | {r['deduplicated']:,} | {r['rate_limited']:,} | {bot} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
