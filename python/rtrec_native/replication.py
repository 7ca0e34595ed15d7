"""Trainer -> replicas: a publisher writes a full snapshot and then deltas into a
directory; replicas in other processes follow it and serve from an up-to-date copy.

Directory layout (every file appears atomically, by rename, so a reader never sees a
partial one)::

    snapshot-00000000.rtrec     full snapshot taken after delta 0 (i.e. before any delta)
    delta-00000001.rtrec        the rows changed since then
    delta-00000002.rtrec        ...
    snapshot-00000600.rtrec     compaction: a full snapshot taken after delta 600

Deltas form one numbered chain (the model's lineage). A replica loads the newest snapshot
and applies the deltas after it; a replica that is up to date just keeps applying deltas
across compactions, so compaction never stalls it. Snapshots only serve replicas that start
or fall behind. Old files are pruned: the two newest snapshots and the deltas after the older
of them are kept; a replica that finds the delta it needs pruned reloads the newest snapshot.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .recommender import Recommender

__all__ = ["Publisher", "Replica", "restore_latest"]

_SNAPSHOT = re.compile(r"^snapshot-(\d{8,})\.rtrec$")
_DELTA = re.compile(r"^delta-(\d{8,})\.rtrec$")


def _snapshot_name(sequence: int) -> str:
    return f"snapshot-{sequence:08d}.rtrec"


def _delta_name(sequence: int) -> str:
    return f"delta-{sequence:08d}.rtrec"


def _listing(directory: Path) -> tuple[list[int], list[int]]:
    """Sequence numbers of the snapshots and of the deltas in `directory`, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    snapshots = sorted(int(m.group(1)) for m in map(_SNAPSHOT.match, names) if m)
    deltas = sorted(int(m.group(1)) for m in map(_DELTA.match, names) if m)
    return snapshots, deltas


def _file_identity(path: Path) -> tuple[int, int, int]:
    """Tells a replaced file from the original (a new file may reuse the inode number)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _apply_following(rec: Recommender, directory: Path) -> int:
    """Apply the deltas that follow `rec`'s position, in order; returns how many."""
    applied = 0
    while True:
        path = directory / _delta_name(rec.snapshot_position[1] + 1)
        try:
            rec.apply_delta(path)
        except FileNotFoundError:
            return applied
        applied += 1


def restore_latest(directory: str | os.PathLike, num_threads: int | None = None) -> Recommender | None:
    """The newest state a publisher left in `directory`: its newest full snapshot with every
    delta after it applied (None if there is no snapshot). Restarts a trainer or a service
    after a crash or a shutdown; the result continues the same lineage, so replicas that
    follow the directory keep following it."""
    directory = Path(directory)
    for sequence in reversed(_listing(directory)[0]):
        try:
            rec = Recommender.load(directory / _snapshot_name(sequence), num_threads=num_threads)
        except FileNotFoundError:  # pruned meanwhile
            continue
        _apply_following(rec, directory)
        return rec
    return None


class Publisher:
    """Publishes a live model for replicas: a full snapshot at once, then a delta of the rows
    that changed every ``interval`` seconds (none when nothing changed), and a full snapshot
    every ``compact_every`` deltas for replicas that start late. Runs in a daemon thread next
    to the trainer; training and serving in this process go on while files are written.

    The directory belongs to one model's lineage: files of another lineage found there at
    start (an older, unrelated model) are removed, so replicas cannot mix the two.

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
        self.last_error: BaseException | None = None  # the last failed flush; None once one succeeds
        self.errors = 0
        self._published: int | None = None  # the model's change count when the last file was cut
        self.deltas_written = 0
        self.snapshots_written = 0
        with self._lock:
            self._remove_other_lineages()
            self._write_snapshot()
        self._thread = threading.Thread(target=self._run, name="rtrec-publisher", daemon=True)
        self._thread.start()

    @property
    def directory(self) -> Path:
        return self._dir

    def _remove_other_lineages(self) -> None:
        lineage = self._rec.snapshot_position[0]
        snapshots, _ = _listing(self._dir)
        if not snapshots:
            return
        try:
            _, theirs, _ = _core.peek_snapshot(str(self._dir / _snapshot_name(snapshots[-1])))
        except (OSError, ValueError):
            theirs = None  # unreadable: not ours either
        if theirs == lineage and lineage != 0:
            return
        for name in os.listdir(self._dir):
            if _SNAPSHOT.match(name) or _DELTA.match(name):
                (self._dir / name).unlink(missing_ok=True)

    def _changes(self) -> int:
        # Bumped by the core after each call's rows are marked: read before a cut, an
        # unchanged count means the delta would hold nothing new.
        return self._rec.change_count

    def _write_snapshot(self) -> None:
        changes = self._changes()
        sequence = self._rec.snapshot_position[1]
        self._rec.save(self._dir / _snapshot_name(sequence))
        if self._published is None:
            self._published = changes
        self.snapshots_written += 1
        self._prune()

    def _prune(self) -> None:
        snapshots, deltas = _listing(self._dir)
        if len(snapshots) <= 2:
            return
        oldest_kept = snapshots[-2]
        for sequence in snapshots[:-2]:
            (self._dir / _snapshot_name(sequence)).unlink(missing_ok=True)
        for sequence in deltas:
            if sequence <= oldest_kept:
                (self._dir / _delta_name(sequence)).unlink(missing_ok=True)

    def flush(self) -> bool:
        """Write a delta now if the model changed since the last one; True if one was written.
        Raises what the write raised (the model's delta state is then unchanged, so the next
        flush carries the same rows)."""
        with self._lock:
            changes = self._changes()
            if changes == self._published:
                return False
            self._rec.save_delta(self._dir / _delta_name(self._rec.snapshot_position[1] + 1))
            self._published = changes
            self.deltas_written += 1
            if self._rec.snapshot_position[1] % self._compact_every == 0:
                self._write_snapshot()
            return True

    def _run(self) -> None:
        # A failed write (disk full, directory gone) must not end publishing for good: it is
        # recorded in `last_error` and retried, backing off up to 5 s.
        delay = self._interval
        while not self._stop.wait(delay):
            try:
                self.flush()
                self.last_error, delay = None, self._interval
            except Exception as exc:
                self.last_error, self.errors = exc, self.errors + 1
                delay = min(max(delay, self._interval) * 2, 5.0)

    def close(self) -> None:
        """Stop the thread and write a last delta, so nothing learned before close is lost.
        Raises if that last write fails."""
        self._stop.set()
        self._thread.join()
        self.flush()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Replica:
    """A read-only model that follows a publisher's directory: it opens the newest full
    snapshot and applies the deltas as they appear (checking every ``poll_interval`` seconds
    in a daemon thread). ``predict``, ``recommend`` and ``recommend_batch`` behave as on
    :class:`Recommender` and keep answering while deltas are applied. It reloads a snapshot
    only when it has fallen behind pruned deltas or the directory changed lineage.

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
        self.last_error: BaseException | None = None  # the last failed poll; None once one succeeds
        self.errors = 0
        self.deltas_applied = 0
        self.snapshots_loaded = 0
        deadline = time.monotonic() + timeout
        while not self._open_newest():
            if time.monotonic() > deadline:
                raise FileNotFoundError(f"no snapshot appeared in {str(self._dir)!r} within {timeout} s")
            time.sleep(self._poll)
        self._catch_up()
        self._thread = threading.Thread(target=self._run, name="rtrec-replica", daemon=True)
        self._thread.start()

    def _open_newest(self) -> bool:
        for sequence in reversed(_listing(self._dir)[0]):
            path = self._dir / _snapshot_name(sequence)
            try:
                identity = _file_identity(path)
                rec = Recommender.load(path, num_threads=self._threads)
            except FileNotFoundError:  # pruned meanwhile: try the next
                continue
            self._rec = rec  # one reference swap: readers see the old model or the new one
            self._loaded = (path, identity)
            self._newest_seen = sequence
            self.snapshots_loaded += 1
            return True
        return False

    def _directory_restarted(self, newest_snapshot: int) -> bool:
        """A new model took the directory over (its publisher removed our lineage's files):
        the newest snapshot went back in sequence, or the file we loaded was replaced."""
        went_back = newest_snapshot < self._newest_seen
        self._newest_seen = max(self._newest_seen, newest_snapshot)
        if went_back:
            return True
        path, identity = self._loaded
        try:
            return _file_identity(path) != identity
        except FileNotFoundError:
            return False  # pruned by compaction: normal

    def _catch_up(self) -> None:
        try:
            self.deltas_applied += _apply_following(self._rec, self._dir)
        except _core.DeltaOrderError as exc:  # another lineage took over the directory
            if not self._open_newest():
                raise exc
            return
        # The next delta is not there. If a snapshot past our position exists, that delta
        # was written before it and has since been pruned: we fell behind, so jump ahead.
        snapshots, _ = _listing(self._dir)
        if not snapshots:
            return
        behind = snapshots[-1] > self._rec.snapshot_position[1] and not (
            self._dir / _delta_name(self._rec.snapshot_position[1] + 1)).exists()
        if behind or self._directory_restarted(snapshots[-1]):
            self._open_newest()
            self.deltas_applied += _apply_following(self._rec, self._dir)

    def _run(self) -> None:
        # A failed poll (a file pruned between listing and opening, a corrupted file) is
        # recorded and retried; the replica keeps serving what it has meanwhile.
        while not self._stop.wait(self._poll):
            try:
                self._catch_up()
                self.last_error = None
            except Exception as exc:
                self.last_error, self.errors = exc, self.errors + 1

    @property
    def position(self) -> tuple[int, int]:
        """(lineage id, last delta applied)."""
        return self._rec.snapshot_position

    @property
    def model(self) -> Recommender:
        """The current model (read-only use: it is replaced when the replica reloads)."""
        return self._rec

    def predict(self, users: Any, items: Any) -> np.ndarray:
        return self._rec.predict(users, items)

    def recommend(self, user: int | str, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend(user, k=k, exclude_seen=exclude_seen)

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend_batch(users, k=k, exclude_seen=exclude_seen)

    def stats(self) -> dict[str, Any]:
        out = self._rec.stats()
        out["lineage"], out["sequence"] = self.position
        out["deltas_applied"] = self.deltas_applied
        out["snapshots_loaded"] = self.snapshots_loaded
        out["errors"] = self.errors
        out["last_error"] = None if self.last_error is None else str(self.last_error)
        return out

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

