"""Deltas fanned out through Redis: the trainer announces every file it publishes on a stream
(``<events stream>:deltas``); replicas block on that stream instead of polling a directory.

Each announcement is one stream entry with the fields

==========  ==============================================================================
kind        ``delta`` or ``snapshot``
lineage     the model's lineage ID (decimal text): deltas of one lineage form one chain
sequence    the file's number in that chain; delta N follows delta N - 1 (its lineage link)
name        the file's name in the trainer's ``--snapshot-dir``
time        when the file became durable (Unix seconds)
data        the delta's bytes, when at most ``max_inline_bytes`` (snapshots never)
==========  ==============================================================================

The stream is trimmed to about ``maxlen`` entries. Snapshots stay in the directory, which
replicas must be able to read (a shared volume): a replica starts from the newest snapshot
there, catches up with the delta files after it, and then applies announced deltas as they
come, from the inline bytes (no file system round trip) or, for big ones, from the file.
A replica that missed announcements (trimmed, or Redis was away) catches up from the files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ._redis import connect

__all__ = ["DEFAULT_MAXLEN", "DEFAULT_MAX_INLINE_BYTES", "Announcement", "DeltaFeed", "RedisAnnouncer"]

DEFAULT_MAXLEN = 100
DEFAULT_MAX_INLINE_BYTES = 8 << 20


class RedisAnnouncer:
    """A :class:`~rtrec_native.Publisher` ``announce`` hook that XADDs each file to ``stream``.

    Args:
        redis: a URL or a ``redis.Redis`` client.
        stream: the announcement stream (by convention ``<events stream>:deltas``).
        maxlen: entries kept (approximately: Redis trims whole blocks).
        max_inline_bytes: deltas up to this size travel inside the announcement.
    """

    def __init__(self, redis: Any, stream: str, maxlen: int = DEFAULT_MAXLEN,
                 max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream: expected a non-empty name, got {stream!r}")
        for name, value, low in (("maxlen", maxlen, 1), ("max_inline_bytes", max_inline_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
        self._r = connect(redis)
        self.stream, self._maxlen, self._max_inline = stream, maxlen, max_inline_bytes
        kind = self._r.type(stream)
        if kind not in (b"stream", b"none", "stream", "none"):
            raise ValueError(f"key {stream!r} holds a Redis {kind!r}, not a stream: choose another stream name")

    def __call__(self, kind: str, lineage: int, sequence: int, path: Path) -> None:
        fields: dict[str, Any] = {"kind": kind, "lineage": str(lineage), "sequence": str(sequence),
                                  "name": Path(path).name, "time": repr(time.time())}
        if kind == "delta" and os.path.getsize(path) <= self._max_inline:
            fields["data"] = Path(path).read_bytes()
        self._r.xadd(self.stream, fields, maxlen=self._maxlen, approximate=True)

    def close(self) -> None:
        self._r.close()


class Announcement:
    """One announcement as a replica reads it."""

    __slots__ = ("data", "entry_id", "kind", "lineage", "name", "sequence", "time")

    def __init__(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            self.entry_id = entry_id
            self.kind = fields[b"kind"].decode()
            self.lineage = int(fields[b"lineage"])
            self.sequence = int(fields[b"sequence"])
            self.name = fields[b"name"].decode()
            self.time = float(fields[b"time"])
            self.data: bytes | None = fields.get(b"data")
        except (KeyError, ValueError, UnicodeDecodeError):
            raise ValueError(f"announcement {entry_id!r} is not a delta announcement (fields "
                             f"{sorted(k.decode('utf-8', 'replace') for k in fields)})") from None


class DeltaFeed:
    """A replica's reader of the announcement stream."""

    def __init__(self, redis: Any, stream: str) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"deltas_stream: expected a non-empty name, got {stream!r}")
        self._r = connect(redis)
        self.stream = stream

    def newest(self) -> Announcement | None:
        """The newest announcement (None when none was made yet)."""
        reply = self._r.xrevrange(self.stream, "+", "-", count=1)
        return Announcement(*reply[0]) if reply else None

    def read(self, after: bytes | str, timeout: float) -> list[Announcement]:
        """Announcements after the entry ``after``, waiting up to ``timeout`` s for one."""
        reply = self._r.xread({self.stream: after}, count=100, block=max(1, int(timeout * 1000)))
        return [Announcement(entry_id, fields) for entry_id, fields in reply[0][1]] if reply else []

    def close(self) -> None:
        self._r.close()
