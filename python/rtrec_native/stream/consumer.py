"""The trainer's loop: read a log in order, learn each event, publish deltas, and acknowledge
entries only once a delta holding them is durable — so that after any crash the model has
learned every event exactly once."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..recommender import Recommender
from ..replication import Publisher
from .entries import EntryError, EntryParser
from .source import Entry, EventSource

__all__ = ["Consumer", "ConsumerState"]

log = logging.getLogger("rtrec_native.stream")


class ConsumerState:
    """What a consumer records in the model's ``source_position`` (and so in every snapshot
    and delta, atomically with the rows): the log it reads, the last entry it holds, and how
    many events it learned and dead-lettered — counts that travel with the model, so they
    never count an event twice across restarts."""

    def __init__(self, source: str, entry: str | None = None, learned: int = 0, dead: int = 0) -> None:
        self.source, self.entry, self.learned, self.dead = source, entry, learned, dead

    def encode(self) -> str:
        return json.dumps({"source": self.source, "entry": self.entry, "learned": self.learned, "dead": self.dead},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, text: str, source: str) -> ConsumerState:
        """The state in a model's ``source_position`` (a new state for an empty one);
        ValueError if it was written for another log."""
        if not text:
            return cls(source)
        try:
            data = json.loads(text)
            state = cls(data["source"], data["entry"], int(data["learned"]), int(data["dead"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"the model's source position {text[:80]!r} was not written by a stream consumer") \
                from None
        if state.source != source:
            raise ValueError(f"the model learned from {state.source}, not from {source}: consume the same stream, "
                             "or start a new model in another --snapshot-dir")
        return state


class Consumer:
    """Learns the events of ``source`` into ``rec`` and publishes it to ``directory``.

    One thread does everything: it reads a batch, learns each event with
    :meth:`Recommender.update_one` in log order (one call per event, so the model does not
    depend on how entries were batched: with one thread and a fixed seed, a run interrupted
    any number of times ends bit-for-bit equal to an uninterrupted one), records the last
    entry in ``rec.source_position``, and every ``interval`` seconds writes a delta through
    its :class:`~rtrec_native.replication.Publisher` and then commits (acknowledges) the
    entries it holds. Entries that cannot be learned go to ``source.dead_letter`` and are
    counted; they never stop the loop.

    Args:
        rec: the model (new, or restored with :func:`~rtrec_native.replication.restore_latest`
            from ``directory``: it resumes after the entry its files record).
        source: the log, e.g. :class:`~rtrec_native.stream.RedisStreamSource`.
        directory: snapshots and deltas go here (see :class:`~rtrec_native.Publisher`).
        ids: ``"auto"``, ``"int"`` or ``"str"``: how ID text is read (see
            :mod:`rtrec_native.stream.entries`).
        event_weights: event type -> weight (None: the ``type`` field is ignored).
        interval: seconds between deltas (> 0): how long an event may wait to reach replicas.
        batch_size: most entries read at once (>= 1).
        compact_every: deltas between full snapshots.
        announce: called after each file the publisher writes (see ``Publisher``), e.g. a
            :class:`~rtrec_native.stream.RedisAnnouncer`.
    """

    def __init__(self, rec: Recommender, source: EventSource, directory: str | os.PathLike, *, ids: str = "auto",
                 event_weights: Mapping[str, float] | None = None, interval: float = 0.1, batch_size: int = 1000,
                 compact_every: int = 600, announce: Callable[..., None] | None = None) -> None:
        if not isinstance(rec, Recommender):
            raise TypeError(f"rec must be a Recommender, got {type(rec).__name__}")
        if not isinstance(source, EventSource):
            raise TypeError(f"source must be an EventSource, got {type(source).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < float("inf"):
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self._rec, self.source = rec, source
        self._parser = EntryParser(rec.get_params()["loss"], ids, event_weights,
                                   user_kind=lambda: rec.user_id_kind, item_kind=lambda: rec.item_id_kind)
        self.state = ConsumerState.decode(rec.source_position, source.identity)
        self._interval, self._batch = float(interval), batch_size
        source.open(self.state.entry)
        # No publisher thread: deltas are cut here, between batches, so a delta never holds
        # an event without the position that says so (or the other way round).
        self.publisher = Publisher(rec, directory, interval=None, compact_every=compact_every, announce=announce)
        self._backlog: list[Entry] = []  # read but not learned (a batch cut short by an error)
        self._held: str | None = None  # the last entry learned and not yet committed
        self._due = time.monotonic() + self._interval
        self.read = 0  # entries read since this object started
        self.on_batch: Callable[[int, float], None] | None = None  # (events, seconds) per learned batch

    @property
    def model(self) -> Recommender:
        return self._rec

    @property
    def learned(self) -> int:
        """Events learned, over the model's whole life (restored with it)."""
        return self.state.learned

    @property
    def dead(self) -> int:
        """Entries dead-lettered, over the model's whole life."""
        return self.state.dead

    def poll(self, timeout: float = 1.0) -> int:
        """Read and learn one batch (waiting up to ``timeout`` seconds for it; less when a
        delta is due sooner), then write a delta and commit if one is due. Returns how many
        entries were handled."""
        entries = self._backlog
        if not entries:
            wait = min(timeout, max(self._due - time.monotonic(), 0.0)) if self._held else timeout
            entries = self.source.read(self._batch, wait)
            self.read += len(entries)
        done = self._learn(entries)
        if self._held is not None and time.monotonic() >= self._due:
            self.flush()
        return done

    def _learn(self, entries: list[Entry]) -> int:
        rec, parse, state = self._rec, self._parser.parse, self.state
        began = time.perf_counter()
        done = learned = 0
        try:
            for entry in entries:
                try:
                    rec.update_one(*parse(entry.id, entry.fields))
                    learned += 1
                except EntryError as exc:
                    self._dead_letter(entry, exc.reason, str(exc))
                except (ValueError, TypeError) as exc:  # the model refused it; nothing changed
                    self._dead_letter(entry, "rejected_by_model", str(exc))
                done += 1
        finally:
            # Also when a dead letter could not be written: what was learned is recorded,
            # the rest waits in the backlog for the next poll.
            self._backlog = entries[done:]
            state.learned += learned
            if done:
                state.entry = entries[done - 1].id
                rec.source_position = state.encode()
                self._held = state.entry
                if self.on_batch is not None and learned:
                    self.on_batch(learned, time.perf_counter() - began)
        return done

    def _dead_letter(self, entry: Entry, reason: str, message: str) -> None:
        self.source.dead_letter(entry, reason, message)
        self.state.dead += 1
        log.warning("dead letter %s (%s): %s", entry.id, reason, message)

    def flush(self) -> None:
        """Write a delta of what was learned (durable when this returns), then commit the
        entries it holds."""
        held = self._held
        self.publisher.flush()
        self._due = time.monotonic() + self._interval
        if held is not None:
            self.source.commit(held)
            if self._held == held:
                self._held = None

    def run(self, stop: threading.Event | None = None, *, idle_exit: float | None = None,
            max_entries: int | None = None) -> None:
        """Poll until ``stop`` is set (or ``idle_exit`` seconds pass with nothing to read, or
        ``max_entries`` were read), then write the last delta. A lost connection to the log
        or a failed write is logged and retried with a growing pause (up to 5 s); it never
        ends the loop (nothing is lost: what was not committed is read again)."""
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        pause = 0.0
        while not stop.is_set():
            if max_entries is not None and self.read >= max_entries and not self._backlog:
                break
            try:
                handled = self.poll(timeout=0.5 if idle_exit is None else min(0.5, idle_exit))
                pause = 0.0
            except (ConnectionError, OSError, *_client_errors()) as exc:
                pause = min(max(pause * 2, 0.1), 5.0)
                log.error("polling failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, pause)
                stop.wait(pause)
                continue
            now = time.monotonic()
            if handled:
                idle_since = now
            elif idle_exit is not None and now - idle_since >= idle_exit:
                break
        self.flush()

    def close(self) -> None:
        """Write the last delta, commit, and release the log."""
        try:
            self.flush()
        finally:
            self.source.close()

    def stats(self) -> dict[str, Any]:
        out = {"learned": self.state.learned, "dead_letters": self.state.dead, "read": self.read,
               "position": self.state.entry, "deltas_written": self.publisher.deltas_written,
               "snapshots_written": self.publisher.snapshots_written}
        out.update(self.source.lag())
        return out


def _client_errors() -> tuple[type[BaseException], ...]:
    try:
        from ._redis import redis_errors  # noqa: PLC0415

        return redis_errors()
    except ImportError:
        return ()
