"""The trainer's loop: read a log in order, learn each batch of events, publish deltas, and
acknowledge entries only once a delta holding them is durable — so that after any crash the
model has learned every event exactly once."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..recommender import Recommender
from ..replication import Publisher
from .archive import EventArchive
from .bulk import BulkParser
from .entries import EntryError, EntryParser, entry_time, is_control, parse_control
from .shared import SharedExchange
from .source import Entry, EventSource, StreamLost

__all__ = ["Consumer", "ConsumerState"]

log = logging.getLogger("rtrec_native.stream")


class ConsumerState:
    """What a consumer records in the model's ``source_position`` (and so in every snapshot
    and delta, atomically with the rows): the log it reads, the last entry it holds, and how
    many events it learned and dead-lettered — counts that travel with the model, so they
    never count an event twice across restarts. A partitioned trainer (see
    :mod:`rtrec_native.stream.shared`) also records its partition (``partitions``, the K it
    was started with, and ``partition``), how many shared-row increments it has published,
    and per other partition the last increment it has added."""

    def __init__(self, source: str, entry: str | None = None, learned: int = 0, dead: int = 0, *,
                 partitions: int | None = None, partition: int | None = None, published: int = 0,
                 applied: dict[str, int] | None = None) -> None:
        self.source, self.entry, self.learned, self.dead = source, entry, learned, dead
        self.partitions, self.partition, self.published = partitions, partition, published
        self.applied = dict(applied or {})

    def encode(self) -> str:
        data: dict[str, Any] = {"source": self.source, "entry": self.entry, "learned": self.learned, "dead": self.dead}
        if self.partitions is not None:  # one trainer: today's position, bit for bit
            data.update(partitions=self.partitions, partition=self.partition, published=self.published,
                        applied=self.applied)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str, source: str) -> ConsumerState:
        """The state in a model's ``source_position`` (a new state for an empty one);
        ValueError if it was written for another log."""
        if not text:
            return cls(source)
        try:
            data = json.loads(text)
            state = cls(data["source"], data["entry"], int(data["learned"]), int(data["dead"]),
                        partitions=data.get("partitions"), partition=data.get("partition"),
                        published=int(data.get("published", 0)),
                        applied={str(k): int(v) for k, v in data.get("applied", {}).items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"the model's source position {text[:80]!r} was not written by a stream consumer") \
                from None
        if state.source != source:
            raise ValueError(f"the model learned from {state.source}, not from {source}: consume the same stream, "
                             "or start a new model in another --snapshot-dir")
        return state


class Consumer:
    """Learns the events of ``source`` into ``rec`` and publishes it to ``directory``.

    One thread does everything: it reads a batch of entries, parses it whole into arrays
    (:class:`~rtrec_native.stream.bulk.BulkParser`; single-event and packed entries alike)
    and learns it with one :meth:`Recommender.update` call in log order (``update`` numbers
    its events, so the model does not depend on how entries were batched: with one thread
    and a fixed seed, a run interrupted any number of times ends bit-for-bit equal to an
    uninterrupted one), records the last entry in ``rec.source_position``, and every
    ``interval`` seconds writes a delta through its
    :class:`~rtrec_native.replication.Publisher` and then commits (acknowledges) the entries
    it holds. Entries that cannot be learned go to ``source.dead_letter`` and are counted;
    the rest of their batch is learned; they never stop the loop. With ``trim``, entries
    every reader has committed are removed from the log (after each delta's commit).

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
        trim: remove committed entries from the log (``rtrec consume`` does by default).
        trim_interval: least seconds between trims (>= 0): a trim follows the commit after a
            delta, at most this often (0, the default: after every commit, so that the log holds
            what some reader still needs and no more).
        archive: an :class:`~rtrec_native.stream.EventArchive` that every learned event is
            appended to, exactly once (its journal is synced before each delta, and rotated
            into a finished Parquet file after one).
        refit: a :class:`~rtrec_native.stream.Refitter` (needs ``archive``): scheduled full
            refits on the archive that replace the model (see :attr:`model`).
        shared: a :class:`~rtrec_native.stream.SharedExchange`: this trainer is one partition
            of a user-partitioned model, and at each delta it adds the other partitions'
            shared-row increments and publishes its own (exactly once each, across restarts).
    """

    def __init__(self, rec: Recommender, source: EventSource, directory: str | os.PathLike, *, ids: str = "auto",
                 event_weights: Mapping[str, float] | None = None, interval: float = 0.1, batch_size: int = 1000,
                 compact_every: int = 600, announce: Callable[..., None] | None = None, trim: bool = False,
                 trim_interval: float = 0.0, archive: EventArchive | None = None, refit: Any = None,
                 shared: SharedExchange | None = None) -> None:
        if not isinstance(rec, Recommender):
            raise TypeError(f"rec must be a Recommender, got {type(rec).__name__}")
        if not isinstance(source, EventSource):
            raise TypeError(f"source must be an EventSource, got {type(source).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        for name, value, zero in (("interval", interval, False), ("trim_interval", trim_interval, True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value < float("inf") \
                    or not (value >= 0 if zero else value > 0):
                raise ValueError(f"{name} must be a number of seconds {'>=' if zero else '>'} 0, got {value!r}")
        if archive is not None and not isinstance(archive, EventArchive):
            raise TypeError(f"archive must be an EventArchive, got {type(archive).__name__}")
        if refit is not None and archive is None:
            raise ValueError("refit needs an archive: the refits are fitted on the archived events")
        if refit is not None and shared is not None:
            raise ValueError("refits of a partitioned model are not supported yet: use refit or shared, not both")
        self._rec, self.source = rec, source
        # The model is read through self: a refit replaces it.
        self._parser = EntryParser(rec.get_params()["loss"], ids, event_weights,
                                   user_kind=lambda: self._rec.user_id_kind, item_kind=lambda: self._rec.item_id_kind)
        self._bulk = BulkParser(self._parser)
        self.state = ConsumerState.decode(rec.source_position, source.identity)
        self.shared = shared
        if shared is not None:
            self._join_partitions(shared)
        self.archive = archive
        if archive is not None:
            archive.recover(self.state.learned)  # drops what it holds past the model's durable position
        self._interval, self._batch = float(interval), batch_size
        self._trim, self._trim_interval = bool(trim), float(trim_interval)
        source.open(self.state.entry)
        # No publisher thread: deltas are cut here, between batches, so a delta never holds
        # an event without the position that says so (or the other way round).
        self.publisher = Publisher(rec, directory, interval=None, compact_every=compact_every, announce=announce)
        self._publishing = {"directory": directory, "compact_every": compact_every, "announce": announce}
        self.refit = refit
        if refit is not None:
            refit.attach(self)
        self._backlog: list[Entry] = []  # read but not learned (a batch cut short by an error)
        self._held: str | None = None  # the last entry learned and not yet committed
        now = time.monotonic()
        self._due = now + self._interval
        self._trim_due = now
        self._durable_at = now  # the last time everything learned was in a durable file
        self._rate = _Rate(self.state.learned)
        self.read = 0  # entries read since this object started
        self.trimmed = 0  # entries this consumer removed from the log
        self.on_batch: Callable[[int, float], None] | None = None  # (events, seconds) per learned batch

    @property
    def model(self) -> Recommender:
        return self._rec

    def _join_partitions(self, shared: SharedExchange) -> None:
        """Checks the model was started as this partition of as many, sets the base its
        increments are taken against (its shared rows as restored: every delta is written
        right after an increment is taken), and adopts into that base the increments it
        published after its last delta (peers have them; its rows learn those events again)."""
        state = self.state
        if state.partitions is not None and state.partitions != shared.partitions:
            raise ValueError(f"the model in this directory was trained with {state.partitions} partitions, not "
                             f"{shared.partitions}: use --partitions {state.partitions}, or a new --snapshot-dir")
        if state.partition is not None and state.partition != shared.partition:
            raise ValueError(f"the model in this directory is partition {state.partition}, not {shared.partition}")
        state.partitions, state.partition = shared.partitions, shared.partition
        core = self._rec._model
        core.reset_shared_base()
        for sequence, inc in shared.own_after(state.published):
            if inc is not None:
                core.add_to_shared_base(inc)
            state.published = sequence
        self._rec.source_position = state.encode()

    def _exchange_shared(self) -> None:
        """Between batches, before a delta: add the peers' new increments (rows and base),
        then take and publish this trainer's own; both recorded in the position the delta
        holds. A failed publish puts the increment back into what the next one takes."""
        shared, state, core = self.shared, self.state, self._rec._model
        for partition, sequence, inc in shared.peers_after(state.applied):
            if inc is not None:
                try:
                    core.add_shared(inc)  # checked whole first: a refused one changes nothing
                except (ValueError, TypeError) as exc:  # another model's shape or ID kind
                    shared.dead_letter(partition, sequence, str(exc))
            state.applied[str(partition)] = sequence
        inc = core.take_shared_increment()
        if inc["item_keys"].size or inc["feature_names"] or inc["tower"].any() or inc["weight_sum"]:
            try:
                shared.publish(state.published + 1, inc)
            except BaseException:
                core.add_to_shared_base(_negated(inc))  # not published: the next increment takes it again
                raise
            state.published += 1
        self._rec.source_position = state.encode()

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
        delta is due sooner), then write a delta and commit if one is due, and trim the log
        if that is due. Returns how many entries were handled."""
        entries = self._backlog
        if not entries:
            wait = min(timeout, max(self._due - time.monotonic(), 0.0)) if self._held else timeout
            try:
                entries = self.source.read(self._batch, wait)
            except StreamLost:
                self._recover_lost_stream()
                return 0
            self.read += len(entries)
        done = self._learn(entries) if entries else 0
        if time.monotonic() >= self._due:
            self.flush()
        if self.refit is not None:
            self.refit.step()
        return done

    def _recover_lost_stream(self) -> None:
        log.warning("%s was lost (Redis came back without it?): the model keeps the %d events it learned%s; "
                    "recreating the group and learning the entries written from now on", self.source.identity,
                    self.state.learned, f" up to entry {self.state.entry}" if self.state.entry else "")
        self.source.recreate(self.state.entry)

    def _learn(self, entries: list[Entry]) -> int:
        """Learn a batch: parsed whole and learned with one ``update`` once both sides' ID
        kinds are known (before the model's first IDs, the first entry decides how the next
        ones' IDs are read, so entries go one by one)."""
        if self._parser.kind("user") is None or self._parser.kind("item") is None:
            done = self._learn_each(entries, 0, set(), until_known=True)
            return done + (self._learn(entries[done:]) if 0 < done < len(entries) else 0)
        if any(is_control(fields) for _, fields in entries):  # hide/unhide: rare, applied in log order
            return self._learn_each(entries, 0, set())
        began = time.perf_counter()
        self._backlog = entries  # until learned: a failure leaves the batch to read again
        parsed = self._bulk.parse(entries)
        state = self.state
        dead_before = state.dead
        try:
            for position, exc in parsed.failures:
                self._dead_letter(entries[position], exc.reason, str(exc), exc.index)
        except BaseException:
            state.dead = dead_before  # written again with the batch (each copy stays one: see dead_letter)
            raise
        if parsed.n:
            try:
                self._rec.update(*parsed.columns)
            except (ValueError, TypeError):  # the model refused an event: nothing changed; find which, one by one
                return self._learn_each(entries, 0, {position for position, _ in parsed.failures}, began)
            if self.archive is not None:
                ids = [_text(entry[0]) for entry in entries]
                self.archive.append(state.learned, *parsed.columns, np.repeat(ids, np.diff(parsed.bounds)))
        self._learned(entries, len(entries), parsed.n, began)
        return len(entries)

    def _learn_each(self, entries: list[Entry], first: int, skip: set[int], began: float | None = None,
                    until_known: bool = False) -> int:
        """Entries one at a time from ``first`` (``skip``: positions already dead-lettered);
        with ``until_known``, only until both sides' ID kinds are known."""
        rec, entry_of = self._rec, self._bulk.entry
        began = time.perf_counter() if began is None else began
        done, learned = first, 0
        try:
            for position in range(first, len(entries)):
                entry = entries[position]
                if position not in skip and is_control(entry[1]):
                    try:
                        self._apply_control(entry)
                    except EntryError as exc:
                        self._dead_letter(entry, exc.reason, str(exc), exc.index)
                    except (ValueError, TypeError) as exc:  # IDs of the other kind: nothing changed
                        self._dead_letter(entry, "rejected_by_model", str(exc))
                elif position not in skip:
                    try:
                        piece = entry_of(_text(entry[0]), entry[1])
                        rec.update(piece.users, piece.items, piece.labels, piece.weights, piece.timestamps)
                        if self.archive is not None:
                            self.archive.append(self.state.learned + learned, piece.users, piece.items, piece.labels,
                                                piece.weights, piece.timestamps, [_text(entry[0])] * piece.n)
                        learned += piece.n
                    except EntryError as exc:
                        self._dead_letter(entry, exc.reason, str(exc), exc.index)
                    except (ValueError, TypeError) as exc:  # the model refused it; nothing changed
                        self._dead_letter(entry, "rejected_by_model", str(exc))
                done = position + 1
                if until_known and self._parser.kind("user") is not None and self._parser.kind("item") is not None:
                    break
        finally:
            # Also when a dead letter could not be written: what was learned is recorded,
            # the rest waits in the backlog for the next poll.
            self._learned(entries, done, learned, began)
        return done

    def _apply_control(self, entry: Entry) -> None:
        """A hide/unhide entry (see :func:`~rtrec_native.stream.entries.is_control`)."""
        op, items = parse_control(entry[1])
        if items:
            (self._rec.hide if op == "hide" else self._rec.unhide)(items)

    def _learned(self, entries: list[Entry], done: int, learned: int, began: float) -> None:
        state = self.state
        self._backlog = entries[done:]
        state.learned += learned
        if done:
            state.entry = _text(entries[done - 1][0])
            self._rec.source_position = state.encode()
            self._held = state.entry
            self._rate.add(state.learned)
            if self.on_batch is not None and learned:
                self.on_batch(learned, time.perf_counter() - began)

    def _dead_letter(self, entry: Entry, reason: str, message: str, index: int | None = None) -> None:
        self.source.dead_letter(entry, reason, message, index)
        self.state.dead += 1
        log.warning("dead letter %s (%s): %s", _text(entry[0]), reason, message)

    def flush(self) -> None:
        """Write a delta of what was learned (durable when this returns), then commit the
        entries it holds."""
        held = self._held
        if self.shared is not None:
            self._exchange_shared()  # published before the delta that records it (see stream.shared)
        if self.archive is not None:
            self.archive.sync()  # the events before the delta that records them (see stream.archive)
        self.publisher.flush()
        self._durable_at = time.monotonic()
        self._due = self._durable_at + self._interval
        if held is not None:
            self.source.commit(held)
            if self._held == held:
                self._held = None
            if self._trim and self._durable_at >= self._trim_due:
                self._trim_due = self._durable_at + self._trim_interval
                self.trimmed += self.source.trim()
        if self.archive is not None:
            self.archive.rotate()

    def swap(self, rec: Recommender) -> None:
        """Replace the model with ``rec`` (a refit that learned every event this one did):
        it takes the consumer's position and counts, and a full snapshot of it takes the
        directory over (see :class:`~rtrec_native.replication.Publisher`), so replicas and
        :func:`~rtrec_native.replication.restore_latest` switch to it. Call between polls,
        after :meth:`flush`. If the snapshot cannot be written, the old model stays."""
        rec.source_position = self.state.encode()
        publisher = Publisher(rec, interval=None, **self._publishing)
        self._rec, self.publisher = rec, publisher
        self._durable_at = time.monotonic()
    def run(self, stop: threading.Event | None = None, *, idle_exit: float | None = None,
            max_entries: int | None = None) -> None:
        """Poll until ``stop`` is set (or ``idle_exit`` seconds pass with nothing to read, or
        ``max_entries`` were read), then write the last delta. A lost connection to the log
        or a failed write is logged and retried with a growing pause (up to 5 s); it never
        ends the loop (nothing is lost: what was not committed is read again). A log that
        came back without the stream (see :meth:`poll`) is said in one line and read again
        from the entries written since."""
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        pause = 0.0
        while not stop.is_set():
            if max_entries is not None and self.read >= max_entries and not self._backlog:
                break
            try:
                handled = self.poll(timeout=0.5 if idle_exit is None else min(0.5, idle_exit))
                if pause:
                    log.warning("polling works again")
                pause = 0.0
            except (ConnectionError, OSError, *_client_errors()) as exc:
                pause = min(max(pause * 2, 0.1), 5.0)
                log.error("polling failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, pause)
                stop.wait(pause)
                idle_since = time.monotonic()  # an outage is not idleness: --idle-exit counts from its end
                continue
            now = time.monotonic()
            if handled:
                idle_since = now
            elif idle_exit is not None and now - idle_since >= idle_exit:
                break
        self.flush()
        if self.refit is not None:
            self.refit.abandon()  # a refit under way is dropped; the next run starts it again
        if self.archive is not None:
            self.archive.rotate(force=True)  # a clean stop leaves every archived event in a finished file
        self.source.drain_acks()

    def close(self) -> None:
        """Write the last delta, commit, close the archive's journal into a file, and
        release the log."""
        try:
            self.flush()
            if self.refit is not None:
                self.refit.abandon()
            if self.archive is not None:
                self.archive.rotate(force=True)
        finally:
            self.source.close()
            if self.shared is not None:
                self.shared.close()

    def stats(self) -> dict[str, Any]:
        """Counters and lag: ``learned``, ``dead_letters``, ``read``, ``position``,
        ``deltas_written``, ``snapshots_written``, ``trimmed``, the source's ``lag`` and
        ``pending``, and for alerting ``lag_entries`` (entries not learned yet: 0 once caught
        up), ``lag_seconds`` (how long the oldest of them has waited, from its entry ID's
        time), ``events_per_second`` (learned, over the last 10 s) and
        ``seconds_since_last_delta`` (since everything learned was last durable)."""
        out = {"learned": self.state.learned, "dead_letters": self.state.dead, "read": self.read,
               "position": self.state.entry, "deltas_written": self.publisher.deltas_written,
               "snapshots_written": self.publisher.snapshots_written, "trimmed": self.trimmed}
        out.update(self.source.lag())
        out.update(self.lag())
        return out

    def lag(self) -> dict[str, float | int | None]:
        """The four alerting figures of :meth:`stats` (None where the log cannot tell)."""
        behind = self.source.lag().get("lag")
        backlog = len(self._backlog)
        try:
            oldest = self.source.entry_after(self.state.entry)
        except (ConnectionError, OSError, *_client_errors()):
            oldest = None
        waited = 0.0 if oldest is None else max(0.0, time.time() - entry_time(oldest))
        now = time.monotonic()
        return {"lag_entries": None if behind is None else behind + backlog,
                "lag_seconds": waited, "events_per_second": self._rate.per_second(self.state.learned, now),
                "seconds_since_last_delta": max(0.0, now - self._durable_at)}


class _Rate:
    """Events learned per second over about the last ``window`` seconds."""

    def __init__(self, learned: int, window: float = 10.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), learned)])

    def add(self, learned: int) -> None:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, learned))
        while len(samples) > 2 and samples[1][0] <= now - self._window:
            samples.popleft()

    def per_second(self, learned: int, now: float) -> float:
        base_time, base = self._samples[0]
        for t, count in self._samples:  # the newest sample at least a window old, else the oldest
            if t <= now - self._window:
                base_time, base = t, count
        return (learned - base) / (now - base_time) if now > base_time else 0.0


def _negated(inc: dict[str, Any]) -> dict[str, Any]:
    return {**inc, "items": -inc["items"], "features": -inc["features"], "tower": -inc["tower"],
            "label_sum": -inc["label_sum"], "weight_sum": -inc["weight_sum"]}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _client_errors() -> tuple[type[BaseException], ...]:
    try:
        from ._redis import redis_errors  # noqa: PLC0415

        return redis_errors()
    except ImportError:
        return ()
