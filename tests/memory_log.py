"""An in-memory log for consumer tests that need no Redis: entries in a list, read in order,
resumable from any entry ID (as the EventSource contract asks)."""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from rtrec_native.stream import EventSource


class ListSource(EventSource):
    """Entries ``(id, fields)`` with IDs ``"1-0"``, ``"2-0"``, ...; ``committed`` is the last
    entry committed."""

    identity = "memory://log"

    def __init__(self, entries: list) -> None:
        # Fields as Redis delivers them: bytes.
        self.entries = [(eid, {k.encode(): v.encode() for k, v in fields.items()}) for eid, fields in entries]
        self.at, self.committed = 0, None
        self.dead: list = []

    def open(self, after: str | None) -> None:
        self.at = 0 if after is None else int(after.split("-")[0])

    def read(self, max_entries: int, timeout: float) -> list:
        out = self.entries[self.at:self.at + max_entries]
        self.at += len(out)
        return out

    def commit(self, upto: str) -> None:
        self.committed = upto

    def dead_letter(self, entry, reason, message, index=None) -> None:
        self.dead.append(entry[0])


def events(n: int, seed: int = 0, users: int = 60, items: int = 40, start: int = 0) -> list:
    """``n`` single-event entries with timestamps (so that models are bit for bit reproducible)."""
    rng = np.random.default_rng(seed)
    return [(f"{start + k + 1}-0", {"user": str(int(rng.integers(0, users))), "item": str(int(rng.integers(0, items))),
                                    "ts": repr(1_000_000.0 + start + k)}) for k in range(n)]


def drain(consumer, until=None, limit: int = 1_000_000) -> None:
    """Poll until the source is read out (and ``until()`` is true, when given)."""
    for _ in range(limit):
        if consumer.source.at >= len(consumer.source.entries) and not consumer._backlog \
                and (until is None or until()):
            return
        consumer.poll(0.0)
    raise AssertionError("the consumer did not finish")


@contextlib.contextmanager
def logged(name: str = "rtrec_native.stream"):
    """The messages of logger ``name`` while the block runs (an in-process ``rtrec consume``
    earlier in the session stops its loggers from propagating to pytest's capture)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger(name), Keep()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
