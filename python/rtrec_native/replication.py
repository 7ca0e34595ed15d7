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

A new lineage takes a directory over (a refit swapped in, or an unrelated model started there)
in three steps, so that a crash at any point leaves a directory that :func:`restore_latest`
restores the newest model from: its snapshot is written as ``staged-snapshot.rtrec`` (which
``restore_latest`` prefers), the old lineage's files are removed, and the staged snapshot is
renamed into place. Replicas see the old lineage's files, then none, then the new snapshot,
and switch to it (see :class:`~rtrec_native.replica.Replica`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._snapshot_dir import _DELTA, _SNAPSHOT, STAGED, _apply_following, _delta_name, _listing, _snapshot_name
from ._snapshot_dir import fsync_directory as _fsync_dir
from .recommender import Recommender
from .replica import Replica

__all__ = ["Publisher", "Replica", "restore_latest"]

log = logging.getLogger("rtrec_native.replication")


def restore_latest(directory: str | os.PathLike, num_threads: int | None = None) -> Recommender | None:
    """The newest state a publisher left in `directory`: its newest full snapshot with every
    delta after it applied (None if there is no snapshot). Restarts a trainer or a service
    after a crash or a shutdown; the result continues the same lineage, so replicas that
    follow the directory keep following it. A staged snapshot (a new lineage that was
    taking the directory over when the process stopped) is the newest state when present."""
    directory = Path(directory)
    try:
        return Recommender.load(directory / STAGED, num_threads=num_threads)
    except FileNotFoundError:
        pass
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
    With ``interval=None`` there is no thread: the owner calls :meth:`flush` (a stream
    consumer does, between batches, so a delta and the source position it records always
    agree).

    The directory belongs to one model's lineage: files of another lineage found there at
    start (an older, unrelated model) are removed, so replicas cannot mix the two.

    Args:
        rec: the model being trained.
        directory: where the files go (created if missing).
        interval: seconds between deltas (> 0), or None to flush by hand.
        compact_every: deltas between full snapshots (>= 1).
        announce: called as ``announce(kind, lineage, sequence, path)`` after each file is
            durable (kind "snapshot" or "delta"), e.g. a
            :class:`~rtrec_native.stream.RedisAnnouncer` that tells replicas at once. Its
            errors are counted in ``announce_errors`` and logged, never raised: the file is
            written, and replicas find it in the directory.
    """

    def __init__(self, rec: Recommender, directory: str | os.PathLike, interval: float | None = 0.1,
                 compact_every: int = 600, announce: Callable[[str, int, int, Path], None] | None = None) -> None:
        if not isinstance(rec, Recommender):
            raise TypeError(f"rec must be a Recommender, got {type(rec).__name__}")
        if interval is not None and not (isinstance(interval, (int, float)) and np.isfinite(interval)
                                         and interval > 0):
            raise ValueError(f"interval must be a number of seconds > 0 or None, got {interval!r}")
        if announce is not None and not callable(announce):
            raise TypeError(f"announce must be callable, got {type(announce).__name__}")
        if isinstance(compact_every, bool) or not isinstance(compact_every, int) or compact_every < 1:
            raise ValueError(f"compact_every must be an int >= 1, got {compact_every!r}")
        self._rec = rec
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._interval = None if interval is None else float(interval)
        self._compact_every = compact_every
        self._announce = announce
        self.announce_errors = 0
        self._lock = threading.Lock()  # one writer of files at a time (thread vs flush/close)
        self._stop = threading.Event()
        self.last_error: BaseException | None = None  # the last failed flush; None once one succeeds
        self.errors = 0
        self._published: tuple[int, str] | None = None  # (change count, source position) at the last cut
        self.deltas_written = 0
        self.snapshots_written = 0
        with self._lock:
            if not self._take_over():
                self._write_snapshot()
        self._thread: threading.Thread | None = None
        if self._interval is not None:
            self._thread = threading.Thread(target=self._run, name="rtrec-publisher", daemon=True)
            self._thread.start()

    @property
    def directory(self) -> Path:
        return self._dir

    def _take_over(self) -> bool:
        """When the directory holds another lineage (or nothing): stage this model's
        snapshot, remove the other lineage's files, rename the snapshot into place (see the
        module's docs); True if it did. False: the directory is this model's lineage."""
        lineage = self._rec.snapshot_position[0]
        snapshots, _ = _listing(self._dir)
        if snapshots and lineage != 0:
            try:
                _, theirs, _ = _core.peek_snapshot(str(self._dir / _snapshot_name(snapshots[-1])))
            except (OSError, ValueError):
                theirs = None  # unreadable: not ours either
            if theirs == lineage:
                return False
        changes = self._changes()
        staged = self._dir / STAGED
        self._rec.save(staged)
        for name in os.listdir(self._dir):
            if _SNAPSHOT.match(name) or _DELTA.match(name):
                (self._dir / name).unlink(missing_ok=True)
        sequence = self._rec.snapshot_position[1]
        path = self._dir / _snapshot_name(sequence)
        os.replace(staged, path)
        _fsync_dir(self._dir)
        self._published = changes
        self.snapshots_written += 1
        self._tell("snapshot", sequence, path)
        return True

    def _changes(self) -> tuple[int, str]:
        # The change count is bumped by the core after each call's rows are marked: read
        # before a cut, an unchanged count means no row is new. A new source position alone
        # is worth a delta too: it makes entries that changed no row (dead letters) durable.
        return self._rec.change_count, self._rec.source_position

    def _write_snapshot(self) -> None:
        changes = self._changes()
        sequence = self._rec.snapshot_position[1]
        path = self._dir / _snapshot_name(sequence)
        self._rec.save(path)
        if self._published is None:
            self._published = changes
        self.snapshots_written += 1
        self._prune()
        self._tell("snapshot", sequence, path)

    def _tell(self, kind: str, sequence: int, path: Path) -> None:
        if self._announce is None:
            return
        try:
            self._announce(kind, self._rec.snapshot_position[0], sequence, path)
        except Exception as exc:  # the file is durable; replicas find it in the directory
            self.announce_errors += 1
            log.warning("could not announce %s %d: %s", kind, sequence, exc)

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
            sequence = self._rec.snapshot_position[1] + 1
            path = self._dir / _delta_name(sequence)
            self._rec.save_delta(path)
            self._published = changes
            self.deltas_written += 1
            self._tell("delta", sequence, path)
            if self._rec.snapshot_position[1] % self._compact_every == 0:
                self._write_snapshot()
            return True

    def _run(self) -> None:
        # A failed write (disk full, directory gone) must not end publishing for good: it is
        # recorded in `last_error` and retried, backing off up to 5 s.
        assert self._interval is not None
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
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
