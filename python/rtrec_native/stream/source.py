"""The consumer's view of a log of events: what a source (Redis Streams here, Kafka later)
must do for :class:`~rtrec_native.stream.Consumer` to learn every event exactly once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

__all__ = ["Entry", "EventSource", "StreamLost"]


class StreamLost(ConnectionError):
    """The log, or the source's bookkeeping of it (a consumer group), is gone: e.g. a Redis
    restarted without persistence. The consumer keeps its model and calls
    :meth:`EventSource.recreate`."""


class Entry(NamedTuple):
    """One log entry: its ID in the source (ordered: a later entry has a later ID) and its
    fields as the source delivered them (names and values as bytes or str: a mapping, or a
    flat ``[name, value, name, value, ...]`` list). A source may return any (id, fields) pair
    of that shape instead, e.g. Redis' reply as it comes."""

    id: str
    fields: dict[Any, Any]


class EventSource(ABC):
    """A log that a :class:`~rtrec_native.stream.Consumer` reads in order.

    The contract that gives exactly-once learning: the consumer learns entries in the order
    :meth:`read` returns them, records the last one's :attr:`Entry.id` in the model
    (``source_position``), saves the model durably, and only then calls :meth:`commit`.
    After a crash the model is restored from its last durable file and :meth:`open` is given
    the ID recorded there: the source must then return exactly the entries after it, in
    order, including those it had delivered before the crash but never saw committed.

    A Kafka source would map this to a partition: ``open`` seeks to the offset after the
    recorded one, ``commit`` commits offsets, ``dead_letter`` produces to a dead-letter topic.
    """

    #: Names the log (e.g. "redis://host:6379/0 stream rtrec:events"): a model that learned from
    #: another log refuses to continue with this one.
    identity: str

    @abstractmethod
    def open(self, after: str | None) -> None:
        """Prepare to read the entries after the ID ``after`` (None: a new model; where the
        source's own bookkeeping, e.g. a consumer group, stands). Raises ValueError when
        entries after ``after`` can no longer be delivered (someone else consumed them)."""

    @abstractmethod
    def read(self, max_entries: int, timeout: float) -> list[Entry]:
        """Up to ``max_entries`` next entries, waiting up to ``timeout`` seconds for the first.
        Raises :class:`StreamLost` when the log is gone."""

    @abstractmethod
    def commit(self, upto: str) -> None:
        """Every entry read up to the ID ``upto`` is durably reflected in the model: the
        source may forget it (acknowledge it)."""

    @abstractmethod
    def dead_letter(self, entry: Entry, reason: str, message: str, index: int | None = None) -> None:
        """Keep a copy of an entry that cannot be learned, with why (``index``: a packed
        entry's first bad event). Called before the entry is committed; called again for the
        same entry after a crash, so it must be idempotent."""

    def lag(self) -> dict[str, int | None]:
        """``{"lag": entries not yet read, "pending": entries read but not committed}``
        (None where the source cannot tell)."""
        return {"lag": None, "pending": None}

    def entry_after(self, position: str | None) -> str | None:
        """The ID of the first entry after ``position`` (None: none, or cannot tell): its
        time is how long the oldest event not yet learned has waited."""
        return None

    def drain_acks(self) -> None:  # noqa: B027 - optional hook
        """Wait until every commit so far has reached the log (a source may commit without
        waiting for the log's answer)."""

    def trim(self) -> int:
        """Forget entries every reader has committed (a bounded log); returns how many."""
        return 0

    def recreate(self, after: str | None) -> None:
        """After :class:`StreamLost`: read again, from the entries after ``after``."""
        raise StreamLost("this source cannot recover a lost log")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
