"""Trainer -> replicas: a publisher writes a full snapshot then deltas into a directory, and
replicas in other processes follow it and serve from an up-to-date copy.

Directory layout (every file appears atomically, by rename, so a reader never sees a
partial one)::

    snapshot-000003.rtrec            full snapshot, base number 3
    delta-000003-00000001.rtrec      first delta on base 3
    delta-000003-00000002.rtrec      ...

A new base (compaction) is written from time to time so that a replica that starts late
does not replay a long chain. Files of bases older than the previous one are removed; a
replica still reading one keeps its open file (POSIX), and a replica that falls behind a
removed delta jumps to the newest base.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .recommender import Recommender

__all__ = ["Publisher", "Replica", "restore_latest"]

_SNAPSHOT = re.compile(r"^snapshot-(\d{6,})\.rtrec$")
_DELTA = re.compile(r"^delta-(\d{6,})-(\d{8,})\.rtrec$")


def _snapshot_name(base: int) -> str:
    return f"snapshot-{base:06d}.rtrec"


def _delta_name(base: int, sequence: int) -> str:
    return f"delta-{base:06d}-{sequence:08d}.rtrec"


def _bases(directory: Path) -> list[int]:
    """Base numbers of the complete snapshots in `directory`, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_SNAPSHOT.match, names) if m)


def restore_latest(directory: str | os.PathLike, num_threads: int | None = None) -> Recommender | None:
    """The newest state a publisher left in `directory`: its newest full snapshot with every
    delta that follows it applied (None if there is no snapshot). Used to restart a trainer
    or a service after a crash or a shutdown."""
    directory = Path(directory)
    for base in reversed(_bases(directory)):
        try:
            rec = Recommender.load(directory / _snapshot_name(base), num_threads=num_threads)
        except FileNotFoundError:
            continue
        sequence = 1
        while (directory / _delta_name(base, sequence)).is_file():
            rec.apply_delta(directory / _delta_name(base, sequence))
            sequence += 1
        return rec
    return None


class Publisher:
    """Publishes a live model for replicas: a full snapshot at once, then a delta of the rows
    that changed every ``interval`` seconds (none when nothing changed), and a fresh full
    snapshot every ``compact_every`` deltas. Runs in a daemon thread next to the trainer;
    training and serving in this process go on while files are written.

    Args:
        rec: the model being trained.
        directory: where the files go (created if missing).
        interval: seconds between deltas (> 0).
        compact_every: deltas between full snapshots (>= 1).
    """

    def __init__(self, rec: Recommender, directory: str | os.PathLike, interval: float = 0.1,
                 compact_every: int = 600) -> None:
        if not isinstance(rec, Recommender):
            raise TypeError(f"rec must be a Recommender, got {type(rec).__name__}")
        if not (isinstance(interval, (int, float)) and np.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        if isinstance(compact_every, bool) or not isinstance(compact_every, int) or compact_every < 1:
            raise ValueError(f"compact_every must be an int >= 1, got {compact_every!r}")
        self._rec = rec
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._interval = float(interval)
        self._compact_every = compact_every
        self._lock = threading.Lock()  # one writer of files at a time (thread vs flush/close)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        existing = _bases(self._dir)
        self._base = (existing[-1] + 1) if existing else 1
        self._sequence = 0
        self._last_state: tuple | None = None
        self.deltas_written = 0
        self.snapshots_written = 0
        with self._lock:
            self._write_snapshot()
        self._thread = threading.Thread(target=self._run, name="rtrec-publisher", daemon=True)
        self._thread.start()

    @property
    def directory(self) -> Path:
        return self._dir

    def _state(self) -> tuple:
        s = self._rec.stats()
        return (s["updates"], s["skipped_updates"], s["n_users"], s["n_items"], s["seen_pairs"])

    def _write_snapshot(self) -> None:
        state = self._state()
        self._rec.save(self._dir / _snapshot_name(self._base))
        self._sequence = 0
        self._last_state = state
        self.snapshots_written += 1
        self._remove_old_bases()

    def _remove_old_bases(self) -> None:
        keep = {self._base, self._base - 1}
        for name in os.listdir(self._dir):
            m = _SNAPSHOT.match(name) or _DELTA.match(name)
            if m and int(m.group(1)) not in keep:
                try:
                    os.unlink(self._dir / name)
                except FileNotFoundError:
                    pass

    def flush(self) -> bool:
        """Write a delta now if anything changed since the last file; True if one was written."""
        with self._lock:
            state = self._state()
            if state == self._last_state:
                return False
            if self._sequence >= self._compact_every:
                self._base += 1
                self._write_snapshot()
                return True
            self._sequence += 1
            self._rec.save_delta(self._dir / _delta_name(self._base, self._sequence))
            self._last_state = state
            self.deltas_written += 1
            return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except BaseException as exc:  # kept for close() to raise; the thread stops
                self._error = exc
                return

    def close(self) -> None:
        """Stop the thread and write a last delta, so nothing learned before close is lost."""
        self._stop.set()
        self._thread.join()
        self.flush()
        if self._error is not None:
            raise RuntimeError(f"the publisher thread failed: {self._error}") from self._error

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Replica:
    """A read-only model that follows a publisher's directory: it opens the newest full
    snapshot, applies the deltas as they appear (every ``poll_interval`` seconds, in a daemon
    thread) and moves to a newer snapshot when the publisher compacts. ``predict``,
    ``recommend`` and ``recommend_batch`` behave as on :class:`Recommender` and keep
    answering while deltas are applied.

    Args:
        directory: the publisher's directory.
        poll_interval: seconds between checks for new files (> 0).
        timeout: seconds to wait for a first snapshot to appear.
        num_threads: threads for serving calls (None: all cores).
    """

    def __init__(self, directory: str | os.PathLike, poll_interval: float = 0.02, timeout: float = 10.0,
                 num_threads: int | None = None) -> None:
        if not (isinstance(poll_interval, (int, float)) and np.isfinite(poll_interval) and poll_interval > 0):
            raise ValueError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")
        self._dir = Path(directory)
        self._poll = float(poll_interval)
        self._threads = num_threads
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.deltas_applied = 0
        deadline = time.monotonic() + timeout
        while True:
            rec = self._open_newest()
            if rec is not None:
                break
            if time.monotonic() > deadline:
                raise FileNotFoundError(f"no snapshot appeared in {str(self._dir)!r} within {timeout} s")
            time.sleep(self._poll)
        self._catch_up()
        self._thread = threading.Thread(target=self._run, name="rtrec-replica", daemon=True)
        self._thread.start()

    def _open_newest(self) -> Recommender | None:
        for base in reversed(_bases(self._dir)):
            try:
                rec = Recommender.load(self._dir / _snapshot_name(base), num_threads=self._threads)
            except FileNotFoundError:  # removed by compaction meanwhile: try the next
                continue
            self._rec, self._base = rec, base  # one reference swap: readers see old or new
            return rec
        return None

    def _catch_up(self) -> None:
        """Apply every delta that follows the current position; move to a newer base first."""
        newest = _bases(self._dir)
        if newest and newest[-1] > self._base:
            self._open_newest()
        while True:
            sequence = self._rec.snapshot_position[1] + 1
            path = self._dir / _delta_name(self._base, sequence)
            try:
                self._rec.apply_delta(path)
            except FileNotFoundError:
                return
            self.deltas_applied += 1

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self._catch_up()
            except BaseException as exc:
                self._error = exc
                return

    @property
    def position(self) -> tuple[int, int]:
        """(base number, last delta applied)."""
        return self._base, self._rec.snapshot_position[1]

    @property
    def model(self) -> Recommender:
        """The current model (read-only use: it is replaced when the publisher compacts)."""
        return self._rec

    def predict(self, users: Any, items: Any) -> np.ndarray:
        return self._rec.predict(users, items)

    def recommend(self, user: int | str, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend(user, k=k, exclude_seen=exclude_seen)

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend_batch(users, k=k, exclude_seen=exclude_seen)

    def stats(self) -> dict[str, Any]:
        out = self._rec.stats()
        out["base"], out["sequence"] = self.position
        out["deltas_applied"] = self.deltas_applied
        return out

    def close(self) -> None:
        """Stop following; raises if the follower thread failed."""
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"the replica thread failed: {self._error}") from self._error

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
