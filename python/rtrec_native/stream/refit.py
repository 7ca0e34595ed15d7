"""Scheduled full refits in the trainer: a fresh model fitted on the event archive in the
background, caught up with the events learned meanwhile, then swapped in for the live model.

Timeline (one :class:`~rtrec_native.stream.Consumer`, one log)::

    live model:  learn learn learn learn learn learn learn learn | (swapped out)
                       ^ cut: delta + archive file                ^ swap: delta + archive file,
    refit model:       fit(archive[..cut], epochs) -> update(archive[cut..]) -> update(tail) -> live

Per event it is exact: the refit model is fitted on the events numbered below the cut (the
consumer's ``learned`` count when the refit started) within the window, then learns every
event from the cut on with ``update``, in the order the live model learned them, read back
from the archive — most of them in the background, the last few (those archived after the
background caught up) in the consumer's thread at the swap. The consumer learns nothing
while it swaps, so the new model holds exactly the events the live one held.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _validation as check
from ..recommender import Recommender
from .archive import LEARNED, read_archive, table_columns

__all__ = ["Refitter", "parse_duration"]

log = logging.getLogger("rtrec_native.stream")

_DURATION = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STATE = "_refit.json"  # the last successful refit's time, so a restart keeps the schedule
_CATCH_UP_CHUNK = 1_000_000  # events read back and learned per update call


def parse_duration(text: str | float, what: str = "a duration") -> float:
    """Seconds from ``"24h"``, ``"15m"``, ``"15s"``, ``"90d"`` or a plain number of seconds;
    ValueError unless it is a finite number > 0."""
    if isinstance(text, bool):
        raise ValueError(f"{what} must be a number of seconds or a duration such as 24h, 15m, 15s, got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ValueError(f"{what} must be a number of seconds or a duration such as 24h, 15m, 15s, got {text!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{what} must be > 0 seconds, got {text!r}")
    return seconds


class _Job:
    """One refit under way: its thread, its model and how far it caught up."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.caught_up = cut  # events numbered below this are in the model
        self.model: Recommender | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.abandoned = threading.Event()
        self.started = time.monotonic()
        self.thread: threading.Thread | None = None


class Refitter:
    """Refits a :class:`~rtrec_native.stream.Consumer`'s model every ``every`` seconds (give
    it as the consumer's ``refit``).

    A refit: the consumer writes a delta and closes an archive file (the cut); a thread
    builds a model with the live model's parameters (``threads`` threads for ``fit``), gives
    it the live model's side features and item names, fits it on the archived events before
    the cut (archived within ``window`` seconds) for ``epochs`` epochs, and learns the events
    archived since the cut. Meanwhile the live model keeps learning and serving. When the
    thread is done, the consumer writes a delta, closes an archive file, lets the new model
    learn the events archived since the thread caught up, copies the hidden items, and swaps
    it in (:meth:`Consumer.swap`: the consumer's position and counts go with it, and its full
    snapshot takes the snapshot directory over). A refit that fails is logged, counted in
    ``failures`` and retried after ``retry_after`` seconds; the live model goes on. A
    process that stops during a refit drops it; the schedule is kept in the archive
    directory (``_refit.json``), so the next start refits at once when one was under way
    or is overdue.

    Carried over: the log position, the ``learned``/``dead`` counts, the ID kinds (the same
    events), side features of every item and of every user in the fitted events, item names
    of every item with a row, hidden items, and admission counts as far as the archive
    window holds the events (they are counted again from it; the core has no way to copy
    its count-min sketch).

    Args:
        every: seconds between refits (> 0), or a duration such as ``"24h"``.
        epochs: passes of ``fit`` (None: the family's default).
        window: only archive files written in the last ``window`` seconds (or ``"90d"``)
            are fitted (None: all). Events after the cut are replayed whatever their age.
        threads: threads for ``fit`` (>= 1; leave a core to serving).
        retry_after: seconds before a failed refit is tried again (None: min(every, 60)).
        prepare: called with each new model before it is fitted (e.g. to give it a
            catalogue's names and features, as the live model got).
    """

    def __init__(self, every: float | str, *, epochs: int | None = None, window: float | str | None = None,
                 threads: int = 1, retry_after: float | None = None,
                 prepare: Callable[[Recommender], None] | None = None) -> None:
        self.every = parse_duration(every, "the refit interval")
        self.epochs = None if epochs is None else check.positive_int(epochs, "epochs")
        self.window = None if window is None else parse_duration(window, "the refit window")
        self.threads = check.positive_int(threads, "threads")
        self.retry_after = min(self.every, 60.0) if retry_after is None else parse_duration(retry_after, "retry_after")
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare must be callable, got {type(prepare).__name__}")
        self._prepare = prepare
        self._consumer: Any = None
        self._job: _Job | None = None
        self._thread: threading.Thread | None = None  # the newest job's
        self._next_at = math.inf
        self.refits = 0  # swapped in, by this object
        self.failures = 0
        self.last_refit: float | None = None  # Unix time of the last swap (kept across restarts)

    # ------------------------------------------------------------------ schedule

    def attach(self, consumer: Any) -> None:
        """Called by the consumer: the first refit is due ``every`` seconds after the last
        one recorded in its archive directory (or after now)."""
        self._consumer = consumer
        self._state_path = consumer.archive.directory / _STATE
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            state = {}
        last, unfinished = state.get("last_refit"), state.get("started")
        self.last_refit = float(last) if isinstance(last, (int, float)) else None
        if isinstance(unfinished, (int, float)):  # the process stopped during a refit: retry it now
            self._next_at = time.time()
        else:
            self._next_at = (time.time() if self.last_refit is None else self.last_refit) + self.every

    @property
    def in_progress(self) -> bool:
        """A refit is under way (started and not yet swapped in or failed)."""
        return self._job is not None

    def running(self) -> bool:
        """A refit thread is still running (also one that was abandoned)."""
        return self._thread is not None and self._thread.is_alive()

    def seconds_since_last_refit(self) -> float | None:
        return None if self.last_refit is None else max(0.0, time.time() - self.last_refit)

    def step(self) -> None:
        """The consumer's hook between polls: start a refit when one is due; swap it in (or
        count its failure) when its thread is done."""
        job = self._job
        if job is None:
            if time.time() >= self._next_at:
                self.start()
        elif job.done.is_set():
            self._finish(job)

    def request(self) -> None:
        """Refit at the consumer's next poll (unless one is under way), whatever the schedule."""
        self._next_at = 0.0

    def abandon(self) -> None:
        """Drop a refit under way (its thread stops at its next step; ``fit`` itself runs to
        its end in the background, so a process that exits does not wait for it)."""
        if self._job is not None:
            self._job.abandoned.set()
            self._job = None

    # ------------------------------------------------------------------ the refit

    def start(self) -> None:
        """Start a refit now, from the consumer's thread (elsewhere: :meth:`request`); the
        schedule's next one counts from its swap."""
        consumer = self._consumer
        consumer.flush()  # everything learned is durable and in the journal ...
        consumer.archive.rotate(force=True)  # ... and in finished files: the cut is a file boundary
        job = _Job(consumer.learned)
        live = consumer.model
        params = {**live.get_params(), "num_threads": self.threads}
        item_ids = live.item_vectors()[0]
        items = _features(live.item_features, item_ids)
        names = live.item_names(item_ids) if len(item_ids) else []
        named = [(i, n) for i, n in zip(item_ids.tolist(), names, strict=True) if n is not None]
        since = None if self.window is None else time.time() - self.window
        job.thread = threading.Thread(target=self._run, args=(job, params, live, items, named, since),
                                      name="rtrec-refit", daemon=True)
        self._job, self._thread = job, job.thread
        self._save_state(started=time.time())
        log.info("refit started: a new model fitted on the %d events archived before the cut%s (%s epochs, %d "
                 "threads); the live model keeps learning", job.cut,
                 "" if self.window is None else f" within the last {self.window:g} s",
                 "default" if self.epochs is None else self.epochs, self.threads)
        job.thread.start()

    def _run(self, job: _Job, params: dict, live: Recommender, items: list, named: list, since: float | None) -> None:
        try:
            directory = self._consumer.archive.directory
            rec = Recommender(**params)
            if self._prepare is not None:
                self._prepare(rec)
            if named:
                rec.set_item_names([i for i, _ in named], [n for _, n in named])
            if items:
                rec.set_item_features([i for i, _ in items], [f for _, f in items])
            table = read_archive(directory, 0, job.cut, since=since, columns=LEARNED)
            if table is not None:
                users = _features(live.user_features, np.unique(table.column("user").to_numpy(zero_copy_only=False)))
                if users:
                    rec.set_user_features([u for u, _ in users], [f for _, f in users])
                users_col, items_col, labels, weights, stamps = table_columns(table)
                del table
                if job.abandoned.is_set():
                    return
                rec.fit(users_col, items_col, labels, weights, epochs=self.epochs, timestamps=stamps)
                del users_col, items_col, labels, weights, stamps
            job.model = rec
            _catch_up(job, directory)
        except BaseException as exc:  # reported by the consumer's thread
            job.error = exc
        finally:
            job.done.set()

    def _finish(self, job: _Job) -> None:
        self._job = None
        consumer = self._consumer
        if job.error is None:
            try:
                consumer.flush()
                consumer.archive.rotate(force=True)
                _catch_up(job, consumer.archive.directory)
                if job.caught_up != consumer.learned:
                    raise RuntimeError(f"the archive holds events up to {job.caught_up}, the live model learned "
                                       f"{consumer.learned}")
                rec = job.model
                _carry_hidden(consumer.model, rec)
                rec._attach(rec._model, consumer.model._threads, consumer.model.get_params()["num_threads"])
                consumer.swap(rec)
            except Exception as exc:
                job.error = exc
        if job.error is not None:
            self.failures += 1
            self._next_at = time.time() + self.retry_after
            log.error("refit failed (%s: %s); the live model goes on; retrying in %g s", type(job.error).__name__,
                      job.error, self.retry_after)
            return
        self.refits += 1
        self.last_refit = time.time()
        self._next_at = self.last_refit + self.every
        self._save_state()
        log.info("refit swapped in after %.1f s: a model fitted on %d events, caught up to %d (lineage %d)",
                 time.monotonic() - job.started, job.cut, job.caught_up, consumer.model.snapshot_position[0])

    def _save_state(self, started: float | None = None) -> None:
        """The schedule: the last swap's time, and ``started`` while a refit runs."""
        tmp = self._state_path.with_name(_STATE + ".tmp")
        try:
            tmp.write_text(json.dumps({"last_refit": self.last_refit, "started": started}))
            os.replace(tmp, self._state_path)
        except OSError as exc:  # the schedule only: a restart refits sooner than due
            log.warning("could not record the refit's time in %s: %s", self._state_path, exc)


def _catch_up(job: _Job, directory: Any) -> None:
    """Learn the archived events from ``job.caught_up`` on, in order, into the job's model."""
    while not job.abandoned.is_set():
        table = read_archive(directory, job.caught_up, job.caught_up + _CATCH_UP_CHUNK, columns=LEARNED)
        if table is None or table.num_rows == 0:
            return
        job.model.update(*table_columns(table))
        job.caught_up += table.num_rows


def _features(features_of: Callable[[Any], list[str]], ids: Any) -> list[tuple[Any, list[str]]]:
    """(ID, features) of the IDs that have features."""
    out = []
    for one in np.asarray(ids).tolist():
        try:
            found = features_of(one)
        except KeyError:
            continue
        if found:
            out.append((one, found))
    return out


def _carry_hidden(live: Recommender, rec: Recommender) -> None:
    ids = live.item_vectors()[0]
    if len(ids):
        hidden = ids[live.hidden(ids).astype(bool)]
        if len(hidden):
            rec.hide(hidden)
