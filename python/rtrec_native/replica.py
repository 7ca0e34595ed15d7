"""A read-only copy of a trainer's model that follows its publisher's directory (or its
Redis announcements) and serves from it."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._snapshot_dir import _apply_following, _delta_name, _file_identity, _listing, _snapshot_name
from .recommender import Recommender

__all__ = ["Replica"]

log = logging.getLogger("rtrec_native.replication")


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

