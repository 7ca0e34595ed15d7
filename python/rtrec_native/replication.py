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

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .recommender import Recommender

__all__ = ["Publisher", "Replica", "restore_latest"]

log = logging.getLogger("rtrec_native.replication")

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
            self._remove_other_lineages()
            self._write_snapshot()
        self._thread: threading.Thread | None = None
        if self._interval is not None:
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


class Replica:
    """A read-only model that follows a publisher's directory: it opens the newest full
    snapshot and applies the deltas as they appear (checking every ``poll_interval`` seconds
    in a daemon thread). ``predict``, ``recommend``, ``recommend_batch`` and ``explain`` behave as on
    :class:`Recommender` and keep answering while deltas are applied. It reloads a snapshot
    only when it has fallen behind pruned deltas or the directory changed lineage.

    With ``redis`` it follows the trainer's announcements on ``deltas_stream`` instead of
    polling (see :mod:`rtrec_native.stream.fanout`): it blocks on the stream and applies each
    delta as soon as it is announced; the directory still provides the snapshot it starts
    from and the files it catches up with when it missed announcements. A directory whose
    newest snapshot is not of the lineage announced on the stream is refused (ValueError):
    the replica would follow another model than the trainer's.

    Args:
        directory: the publisher's directory.
        poll_interval: seconds between checks for new files (> 0; without ``redis``).
        timeout: seconds to wait for a first snapshot to appear.
        num_threads: threads for serving calls (None: all cores).
        redis: a Redis URL (``redis://127.0.0.1:6379/0``) or client to follow instead of
            polling (needs the ``[stream]`` extra).
        deltas_stream: the stream the trainer announces on (``rtrec consume --stream S``
            announces on ``S:deltas``).
    """

    def __init__(self, directory: str | os.PathLike, poll_interval: float = 0.02, timeout: float = 10.0,
                 num_threads: int | None = None, *, redis: Any = None,
                 deltas_stream: str = "rtrec:events:deltas") -> None:
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
        self._feed: Any = None
        self._announced: tuple[int, int] | None = None  # (lineage, sequence) of the newest announcement
        self._behind_since: float | None = None
        deadline = time.monotonic() + timeout
        if redis is not None:
            from .stream.fanout import DeltaFeed  # noqa: PLC0415 - redis is optional

            self._feed = DeltaFeed(redis, deltas_stream)
            # Read before the directory: whatever is announced after this point comes
            # through the feed, whatever before it is in the files.
            newest = self._feed.newest()
            self._cursor: Any = newest.entry_id if newest is not None else b"0-0"
            if newest is not None:
                self._announced = (newest.lineage, newest.sequence)
        while not self._open_newest():
            if time.monotonic() > deadline:
                raise FileNotFoundError(f"no snapshot appeared in {str(self._dir)!r} within {timeout} s")
            time.sleep(self._poll)
        if self._feed is not None:
            self._check_lineage(deltas_stream, min(deadline, time.monotonic() + 2.0))
            self._scratch = tempfile.mkdtemp(prefix="rtrec-replica-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK)
                                             else None)
        self._catch_up()
        run = self._run if self._feed is None else self._follow
        self._thread = threading.Thread(target=run, name="rtrec-replica", daemon=True)
        self._thread.start()

    def _check_lineage(self, stream: str, deadline: float) -> None:
        """The directory must hold the announced lineage. A trainer writes a snapshot before
        announcing it, so a brief mismatch (a new model taking over) is waited out."""
        while self._announced is not None and self._announced[0] != self._rec.snapshot_position[0]:
            if time.monotonic() > deadline:
                raise ValueError(
                    f"the trainer announces lineage {self._announced[0]} on {stream!r} but the newest snapshot in "
                    f"{str(self._dir)!r} is of lineage {self._rec.snapshot_position[0]}: give the trainer's "
                    "--snapshot-dir (or the matching --stream)")
            time.sleep(0.05)
            newest = self._feed.newest()
            self._announced = None if newest is None else (newest.lineage, newest.sequence)
            if self._announced is not None and self._announced[0] != self._rec.snapshot_position[0]:
                self._open_newest()

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

    def _follow(self) -> None:
        # Blocks on the announcement stream (0.25 s at a time, to notice close()). When Redis
        # is away the directory is polled meanwhile, so the replica still catches up.
        pause = 0.0
        while not self._stop.is_set():
            try:
                for announcement in self._feed.read(self._cursor, timeout=0.25):
                    self._cursor = announcement.entry_id
                    self._on_announcement(announcement)
                if pause:
                    log.warning("following %s again", self._feed.stream)
                self.last_error, pause = None, 0.0
            except Exception as exc:
                if not pause:  # once per outage: the replica serves what it has and polls the directory
                    log.warning("following %s failed (%s: %s); serving the model as it is, catching up from the "
                                "directory meanwhile", self._feed.stream, type(exc).__name__, exc)
                self.last_error, self.errors = exc, self.errors + 1
                pause = min(max(pause * 2, 0.05), 2.0)
                if self._stop.wait(pause):
                    return
                try:
                    self._catch_up()
                except Exception as again:
                    self.last_error = again

    def _on_announcement(self, note: Any) -> None:
        self._announced = (note.lineage, note.sequence)
        lineage, position = self._rec.snapshot_position
        if note.lineage != lineage:  # a new model took over: its snapshot is in the directory
            self._open_newest()
            self.deltas_applied += _apply_following(self._rec, self._dir)
            if self._rec.snapshot_position[0] != note.lineage:
                raise ValueError(f"the trainer announced lineage {note.lineage}, which {str(self._dir)!r} does not "
                                 "hold")
        elif note.sequence > position:
            self._behind_since = self._behind_since or note.time
            if note.kind == "delta" and note.sequence == position + 1:
                self._apply_announced(note)
            else:  # missed announcements (trimmed, or Redis was away): the files have them
                self._catch_up()
        if self._announced[1] <= self._rec.snapshot_position[1]:
            self._behind_since = None

    def _apply_announced(self, note: Any) -> None:
        if note.data is None:
            self._rec.apply_delta(self._dir / note.name)
        else:  # the bytes came with the announcement: no round trip through a shared volume
            path = Path(self._scratch) / note.name
            path.write_bytes(note.data)
            try:
                self._rec.apply_delta(path)
            finally:
                path.unlink(missing_ok=True)
        self.deltas_applied += 1

    def lag(self) -> tuple[int | None, float]:
        """``(deltas, seconds)`` this replica is behind the trainer: deltas published (or
        announced) and not applied yet, and how long it has been behind (0 when up to
        date). ``deltas`` is None when it cannot tell (another lineage announced)."""
        lineage, position = self._rec.snapshot_position
        if self._feed is not None:
            if self._announced is None:
                return 0, 0.0
            if self._announced[0] != lineage:
                return None, 0.0
            behind = max(0, self._announced[1] - position)
        else:
            deltas = _listing(self._dir)[1]
            behind = max(0, (deltas[-1] if deltas else 0) - position)
            if behind and self._behind_since is None:
                self._behind_since = time.time()
            elif not behind:
                self._behind_since = None
        since = self._behind_since
        return behind, (max(0.0, time.time() - since) if behind and since is not None else 0.0)

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

    # Retrieval as on Recommender (same arguments, filters included); hidden items are the
    # trainer's: hide/unhide there, and the next delta carries them here.
    def recommend(self, user: int | str, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0,
                  **filters: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend(user, k=k, exclude_seen=exclude_seen, diversity=diversity, **filters)

    def _recommend_with_info(self, user: int | str, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0,
                             **filters: Any) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        return self._rec._recommend_with_info(user, k=k, exclude_seen=exclude_seen, diversity=diversity, **filters)

    def recommend_batch(self, users: Any, k: int = 10, exclude_seen: bool = True, diversity: float = 0.0,
                        **filters: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend_batch(users, k=k, exclude_seen=exclude_seen, diversity=diversity, **filters)

    def recommend_for_history(self, history: Any, k: int = 10, weights: Any = None,
                              **options: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.recommend_for_history(history, k=k, weights=weights, **options)

    def similar_items(self, item: int | str, k: int = 10, **filters: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._rec.similar_items(item, k=k, **filters)

    def similar_items_batch(self, query_items: Any, k: int = 10, **filters: Any) -> Any:
        return self._rec.similar_items_batch(query_items, k=k, **filters)

    def knows_user(self, user: int | str) -> bool:
        return self._rec.knows_user(user)

    def hidden(self, items: Any) -> np.ndarray:
        return self._rec.hidden(items)

    def explain(self, user: int | str, item: int | str, n: int = 3) -> list[dict[str, Any]]:
        return self._rec.explain(user, item, n=n)

    def stats(self) -> dict[str, Any]:
        out = self._rec.stats()
        out["lineage"], out["sequence"] = self.position
        out["deltas_applied"] = self.deltas_applied
        out["snapshots_loaded"] = self.snapshots_loaded
        out["errors"] = self.errors
        out["last_error"] = None if self.last_error is None else str(self.last_error)
        out["lag_deltas"], out["lag_seconds"] = self.lag()
        return out

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join()
        if self._feed is not None:
            self._feed.close()
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

