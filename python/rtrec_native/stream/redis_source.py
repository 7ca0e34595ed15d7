"""Redis Streams as an :class:`~rtrec_native.stream.EventSource`: a consumer group read in
order, entries acknowledged (XACK) only when committed, dead letters copied to
``<stream>:dead`` under their own entry ID (that stream capped), the stream trimmed behind
every group, and a stream or group lost with a Redis that came back empty recreated."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from ._redis import connect, redis_errors, stream_ids
from .source import Entry, EventSource, StreamLost

__all__ = ["DEAD_SUFFIX", "DEFAULT_DEAD_MAXLEN", "RedisStreamSource"]

log = logging.getLogger("rtrec_native.stream")

try:
    from hiredis import pack_command as _pack_command
except ImportError:  # redis-py packs commands itself
    _pack_command = None

#: Dead letters of stream S go to S + DEAD_SUFFIX.
DEAD_SUFFIX = ":dead"
_ACK_CHUNK = 10_000  # IDs per XACK: one command, bounded size
#: Dead letters kept (approximately: Redis trims whole blocks); the oldest go first.
DEFAULT_DEAD_MAXLEN = 100_000


def _entries(reply: Any) -> list:
    """The entries of an XREADGROUP reply of one stream (RESP3: a map; RESP2: a list)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))
    return reply[0][1]


def _after_id(entry_id: bytes | str) -> str:
    """The smallest entry ID after ``entry_id``."""
    ms, seq = stream_ids(entry_id)
    return f"{ms}-{seq + 1}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamSource(EventSource):
    """Reads ``stream`` through the consumer group ``group`` as consumer ``consumer``.

    :meth:`open` creates the group when it does not exist (at the start of the stream, or
    just after the model's recorded entry: the same entries either way, without re-reading
    the older ones), and uses an existing group as it is. Entries the group delivered before
    a crash and never acknowledged (its pending entries, whichever consumer name held them)
    are taken over and returned first, in order; those at or before the model's recorded
    entry are acknowledged without being returned.

    Args:
        redis: a URL (``redis://127.0.0.1:6379/0``) or a ``redis.Redis`` client.
        stream: the stream's key; dead letters go to ``stream + ":dead"``.
        group: the consumer group (one trainer per group and model).
        consumer: this reader's name in the group.
        dead_maxlen: dead letters kept on ``stream + ":dead"`` (about; the oldest go first).

    :meth:`read` returns the entries as Redis sends them, ``[id, [name, value, ...]]`` (bytes),
    without building a dict per entry.
    """

    def __init__(self, redis: Any, stream: str, group: str, consumer: str = "trainer", *,
                 dead_maxlen: int = DEFAULT_DEAD_MAXLEN) -> None:
        for name, value in (("stream", stream), ("group", group), ("consumer", consumer)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: expected a non-empty name, got {value!r}")
        if stream.endswith(DEAD_SUFFIX):
            raise ValueError(f"stream {stream!r} is a dead-letter stream; consume "
                             f"{stream[: -len(DEAD_SUFFIX)]!r} (its dead letters stay where they are)")
        if isinstance(dead_maxlen, bool) or not isinstance(dead_maxlen, int) or dead_maxlen < 1:
            raise ValueError(f"dead_maxlen: expected an int >= 1, got {dead_maxlen!r}")
        self._url = redis if isinstance(redis, str) else "redis"
        self._r = connect(redis)
        # The same connections, without redis-py's reply parsing for XREADGROUP (a dict per
        # entry): the entries come as Redis sends them and are parsed in bulk.
        self._raw = type(self._r)(connection_pool=self._r.connection_pool)
        self._raw.response_callbacks.pop("XREADGROUP", None)
        self.dead_maxlen = dead_maxlen
        self._key, self._group_key = stream.encode(), group.encode()
        self.stream, self.group, self.consumer = stream, group, consumer
        self.dead_stream = stream + DEAD_SUFFIX
        self.identity = f"redis stream {stream}"
        self._after: tuple[int, int] | None = None
        self._cursor = "0"  # "0": our pending entries first; then ">": new ones
        self._unacked: list[bytes] = []  # read, not yet committed (in order)
        self._returned: tuple[int, int] | None = None  # the last entry read returned
        self._prefetch: Any = None  # a connection with an XREADGROUP sent and its reply not taken
        self._acking: Any = None  # (connection, IDs, replies) of XACKs sent and not answered yet
        self._reack: list[bytes] = []  # IDs whose XACK was lost with its connection: sent again
        self._errors = redis_errors()

    # ------------------------------------------------------------------ open

    def open(self, after: str | None) -> None:
        import redis as redis_module  # noqa: PLC0415

        self._drop_prefetch()
        kind = _text(self._r.type(self.stream))
        if kind not in ("stream", "none"):
            raise ValueError(f"key {self.stream!r} holds a Redis {kind}, not a stream: wrong --stream name?")
        self._after = None if after is None else stream_ids(after)
        try:
            self._r.xgroup_create(self.stream, self.group, id=after or "0", mkstream=True)
            created = True
        except redis_module.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            created = False
        if after is not None and (created or not self._stream_holds(after)):
            log.warning("group %s of %s did not exist (or the stream is older than the model's entry %s): the "
                        "stream was lost (Redis came back without it?) or --group changed; the model keeps what "
                        "it learned and learns the entries after %s", self.group, self.stream, after, after)
        self._take_over_pending()
        if after is not None and not created:
            self._check_no_gap(after)
        self._cursor = "0"
        log.info("reading %s as %s/%s (group %s)", self.stream, self.group, self.consumer,
                 "created" if created else "existing")

    def _stream_holds(self, after: str) -> bool:
        """Whether the stream ever held the entry ``after`` (its newest ID is not older)."""
        return stream_ids(self._r.xinfo_stream(self.stream)["last-generated-id"]) >= stream_ids(after)

    def recreate(self, after: str | None) -> None:
        """The stream or the group is gone (Redis restarted without persistence): create the
        group again just after ``after`` (the model's entry), so that nothing is learned twice
        and entries written since are learned."""
        self._drop_prefetch()
        with contextlib.suppress(Exception):  # the stream is gone: nothing to acknowledge
            self.drain_acks()
        self._r.xgroup_create(self.stream, self.group, id=after or "0", mkstream=True)
        self._unacked, self._reack = [], []
        self._returned = None
        self._after = None if after is None else stream_ids(after)
        self._cursor = ">"

    def _take_over_pending(self) -> None:
        """Claim every entry the group delivered and nobody acknowledged (a previous trainer
        under any consumer name): one trainer per group, so they are ours."""
        start = "0-0"
        while True:
            # Without JUSTID: redis-py drops the cursor from a JUSTID reply.
            reply = self._r.xautoclaim(self.stream, self.group, self.consumer, 0, start, count=1000)
            start = _text(reply[0])
            if start == "0-0":
                return

    def _check_no_gap(self, after: str) -> None:
        """Entries the group delivered after the model's entry must all still be pending:
        one acknowledged by someone else (another reader of the group) never reaches the
        model, and that is refused rather than silently lost."""
        info = next((g for g in self._r.xinfo_groups(self.stream) if _text(g["name"]) == self.group), None)
        delivered = _text(info["last-delivered-id"]) if info else "0-0"
        if stream_ids(delivered) <= stream_ids(after):
            return
        pending = {_text(p["message_id"]) for p in
                   self._r.xpending_range(self.stream, self.group, f"({after}", delivered, 1_000_000)}
        for entry_id, _ in self._r.xrange(self.stream, f"({after}", delivered, count=len(pending) + 1):
            if _text(entry_id) not in pending:
                raise ValueError(
                    f"group {self.group!r} of stream {self.stream!r} has acknowledged entry {_text(entry_id)}, which "
                    f"the model (at entry {after}) never learned: another reader uses this group; give the trainer "
                    "a group of its own (--group)")

    # ------------------------------------------------------------------ reading

    def read(self, max_entries: int, timeout: float) -> list[Entry]:
        """Entries after the last ones read, as Redis sends them. While the trainer is behind
        (a full batch came), the next XREADGROUP is sent before this returns, so that Redis
        prepares the next batch while this one is learned; its reply is taken by the next
        call (those entries are delivered to the group, pending, like any read and not yet
        acknowledged one)."""
        import redis as redis_module  # noqa: PLC0415

        while True:
            raw = None
            try:
                if self._cursor == ">":
                    if self._prefetch is not None:
                        raw = _entries(self._take_prefetch())
                    if not raw:
                        raw = _entries(self._raw.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                            count=max_entries, block=max(1, int(timeout * 1000))))
                    if len(raw) >= max_entries:
                        self._send_prefetch(max_entries)
                else:
                    raw = _entries(self._raw.xreadgroup(self.group, self.consumer, {self.stream: self._cursor},
                                                        count=max_entries))
            except redis_module.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    raise StreamLost(f"stream {self.stream!r} or its group {self.group!r} is gone: {exc}") from None
                raise
            except BaseException:
                # A reply lost with the connection may have delivered entries to the group that
                # never came here: read this consumer's pending entries again first (those it
                # returned already are skipped).
                self._drop_prefetch()
                self._cursor = "0"
                raise
            if self._cursor != ">":
                if not raw:
                    self._cursor = ">"  # our pending entries are done: new ones from here
                    self._ack_learned_pending()
                    continue
                self._cursor = _text(raw[-1][0])
                raw = self._keep(raw)
            elif raw and self._after is not None and stream_ids(raw[0][0]) <= self._after:
                raw = self._keep(raw)
            else:
                self._unacked.extend([e[0] for e in raw])
            if raw:
                self._returned = stream_ids(raw[-1][0])
            if raw or self._cursor == ">":
                return raw

    def _send_prefetch(self, count: int) -> None:
        pool = self._r.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, "STREAMS",
                              self.stream, ">")
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        self._prefetch = conn

    def _take_prefetch(self) -> Any:
        conn, self._prefetch = self._prefetch, None
        try:
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._r.connection_pool.release(conn)

    def _drop_prefetch(self) -> None:
        """Forget a read sent and not taken: its entries stay pending in the group, and are
        taken over by whoever opens it next."""
        conn, self._prefetch = self._prefetch, None
        if conn is not None:
            conn.disconnect()
            self._r.connection_pool.release(conn)

    def _keep(self, raw: list) -> list:
        """The entries not returned yet. Those at or before the model's position (already
        learned, never acknowledged), and pending ones trimmed from the stream meanwhile,
        are acknowledged without learning; those returned since (learned or waiting, not yet
        committed: a pending entry read again after a lost connection) are skipped."""
        out, skipped = [], []
        after, returned = self._after, self._returned
        for entry in raw:
            entry_id, fields = entry[0], entry[1]
            position = stream_ids(entry_id)
            if (after is not None and position <= after) or not fields:
                skipped.append(entry_id)
                if not fields and (after is None or position > after):
                    log.warning("entry %s was trimmed from %s before it was learned", _text(entry_id), self.stream)
                continue
            if returned is not None and position <= returned:
                continue
            self._unacked.append(entry_id)
            out.append(entry)
        if skipped:
            self._r.xack(self.stream, self.group, *skipped)
        return out

    def commit(self, upto: str) -> None:
        limit = stream_ids(upto)
        n = len(self._unacked)
        if n and stream_ids(self._unacked[-1]) > limit:  # rare: entries read after the position
            n = 0
            while stream_ids(self._unacked[n]) <= limit:
                n += 1
        done, self._unacked = self._unacked[:n], self._unacked[n:]
        self._ack(done)
        self._after = limit

    def _ack(self, ids: list[bytes]) -> None:
        """XACK ``ids``, without waiting for Redis to answer: the command is packed by hiredis
        in one call (redis-py's own packing checks and encodes each argument in Python) and
        sent on a connection of its own, whose reply is read before the next XACK or at close.
        An acknowledgement lost with a connection is sent again with the next one (and
        one never sent is harmless: after a restart, pending entries the model already holds
        are acknowledged without being learned)."""
        try:
            self.drain_acks()
        except BaseException:
            self._reack.extend(ids)  # after the unanswered ones drain_acks put back
            raise
        ids, self._reack = self._reack + ids, []
        if not ids:
            return
        if _pack_command is None:
            for start in range(0, len(ids), _ACK_CHUNK):
                try:
                    self._r.xack(self.stream, self.group, *ids[start:start + _ACK_CHUNK])
                except BaseException:
                    self._reack = ids[start:]
                    raise
            return
        pool = self._r.connection_pool
        conn = pool.get_connection()
        try:
            head = (b"XACK", self._key, self._group_key)
            conn.send_packed_command([_pack_command((*head, *ids[start:start + _ACK_CHUNK]))
                                      for start in range(0, len(ids), _ACK_CHUNK)])
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            self._reack = ids
            raise
        self._acking = (conn, ids, -(-len(ids) // _ACK_CHUNK))

    def drain_acks(self) -> None:
        """Wait until Redis has applied the XACKs sent (their replies read)."""
        if self._acking is None:
            return
        (conn, ids, replies), self._acking = self._acking, None
        try:
            for _ in range(replies):
                conn.read_response()
        except BaseException:
            conn.disconnect()
            self._reack = ids + self._reack
            raise
        finally:
            self._r.connection_pool.release(conn)

    def dead_letter(self, entry: Entry, reason: str, message: str, index: int | None = None) -> None:
        import redis as redis_module  # noqa: PLC0415

        fields = entry[1]
        copy = dict(fields) if isinstance(fields, dict) else dict(zip(fields[0::2], fields[1::2], strict=False))
        copy["rtrec.reason"], copy["rtrec.error"] = reason, message
        if index is not None:
            copy["rtrec.index"] = str(index)
        try:
            # Under the entry's own ID: a second copy after a crash is refused by Redis (IDs
            # only grow, also after the stream was capped), so each malformed entry has
            # exactly one dead letter.
            self._r.xadd(self.dead_stream, copy, id=_text(entry[0]), maxlen=self.dead_maxlen, approximate=True)
        except redis_module.ResponseError as exc:
            if "equal or smaller" not in str(exc):
                raise

    def trim(self) -> int:
        """Remove the entries every consumer group of the stream has acknowledged (XTRIM
        MINID): those before the oldest entry any group has pending or has not read yet.
        A group acknowledges an entry only once a durable snapshot or delta holds it (this
        trainer's does), so no entry a group still needs is removed. This reader's own bound
        is the entry after its last commit (known here: its XACK need not have arrived);
        the other groups' come from Redis. Returns how many entries went."""
        import redis as redis_module  # noqa: PLC0415

        bound = None if self._after is None else _after_id(f"{self._after[0]}-{self._after[1]}")
        try:
            for info in self._r.xinfo_groups(self.stream):
                if _text(info["name"]) == self.group:
                    if bound is None:
                        bound = _after_id(info["last-delivered-id"]) if not info["pending"] else \
                            _text(self._r.xpending(self.stream, self.group)["min"])
                    continue
                if info["pending"]:
                    oldest = _text(self._r.xpending(self.stream, info["name"])["min"])
                else:
                    oldest = _after_id(info["last-delivered-id"])
                if bound is None or stream_ids(oldest) < stream_ids(bound):
                    bound = oldest
            if bound is None:
                return 0
            return int(self._r.xtrim(self.stream, minid=bound, approximate=False))
        except redis_module.ResponseError:  # the stream is gone: nothing to trim
            return 0

    def lag(self) -> dict[str, int | None]:
        import redis as redis_module  # noqa: PLC0415

        try:
            info = next((g for g in self._r.xinfo_groups(self.stream) if _text(g["name"]) == self.group), None)
        except (*self._errors, redis_module.ResponseError):
            return {"lag": None, "pending": len(self._unacked)}
        pending = len(self._unacked)
        if info is None or info.get("lag") is None:
            return {"lag": None, "pending": pending}
        # Not read yet: not delivered to the group, or delivered and not returned by read (a
        # read sent ahead, or a previous trainer's pending entries not taken over yet).
        return {"lag": int(info["lag"]) + max(0, int(info["pending"]) - pending), "pending": pending}

    def entry_after(self, position: str | None) -> str | None:
        reply = self._r.xrange(self.stream, "-" if position is None else f"({position}", "+", count=1)
        return _text(reply[0][0]) if reply else None

    def _ack_learned_pending(self) -> None:
        """Acknowledge the group's pending entries at or before the model's position: they are
        learned (one trainer per group), but their XACK may have been lost with an outage after
        the last re-read of this consumer's pending entries, and nothing else would send it
        again. Bounded: at most one call's worth per range."""
        if self._after is None:
            return
        upto = f"{self._after[0]}-{self._after[1]}"
        while True:
            pending = self._r.xpending_range(self.stream, self.group, "-", upto, 10_000)
            if not pending:
                return
            ids = [p["message_id"] for p in pending]
            self._r.xack(self.stream, self.group, *ids)
            if len(ids) < 10_000:
                return

    def close(self) -> None:
        self._drop_prefetch()
        try:
            self.drain_acks()
            if self._unacked == [] and self._reack == []:
                with contextlib.suppress(Exception):  # best effort: a restart does the same
                    self._ack_learned_pending()
        finally:
            self._r.close()
