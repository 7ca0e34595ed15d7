"""The shared rows of a user-partitioned model, exchanged over Redis.

With ``K`` trainers, trainer ``p`` learns the events of its own users (stream ``<S>:p``). What
every trainer learns from its own events and the others need, the *shared rows* (items, item
features, the tower, the label sums; see ``Model.shared_rows`` in the core), travels as
increments: trainer ``p`` appends what its own learning added since its last increment to the
stream ``<S>:shared:p``, under the entry ID ``0-n`` for its n-th increment, and adds the
increments of every other partition, each once, in order. The consumer does both at each of
its deltas, between batches, and records in the model's position how many increments it has
published and, per partition, how many it has added, so a restarted trainer (restored from
its last delta) adds each increment exactly once and republishes nothing: an increment it
published after that delta is found in its own stream and joins its base, not its rows.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from ._redis import connect

__all__ = ["SharedExchange", "decode_increment", "encode_increment"]

log = logging.getLogger("rtrec_native.stream")

# Entries read from one partition's increment stream per call.
_READ_COUNT = 64


def encode_increment(inc: dict[str, Any]) -> dict[str, bytes]:
    """An increment (``Model.take_shared_increment``) as stream entry fields."""
    items = np.ascontiguousarray(inc["items"], dtype=np.float32)
    features = np.ascontiguousarray(inc["features"], dtype=np.float32)
    header = {"rows": int(items.shape[0]), "width": int(items.shape[1]), "feature_width": int(features.shape[1]),
              "item_names": inc["item_names"], "feature_names": list(inc["feature_names"]),
              "label_sum": float(inc["label_sum"]), "weight_sum": float(inc["weight_sum"])}
    return {"header": json.dumps(header, separators=(",", ":")).encode(),
            "keys": np.ascontiguousarray(inc["item_keys"], dtype=np.uint64).tobytes(),
            "items": items.tobytes(), "features": features.tobytes(),
            "tower": np.ascontiguousarray(inc["tower"], dtype=np.float32).tobytes()}


def decode_increment(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The increment of stream entry fields written by :func:`encode_increment`; ValueError
    when they are not one."""
    try:
        header = json.loads(fields[b"header"])
        rows, width, feature_width = int(header["rows"]), int(header["width"]), int(header["feature_width"])
        names = header["feature_names"]
        return {"item_keys": np.frombuffer(fields[b"keys"], dtype=np.uint64),
                "item_names": header["item_names"],
                "items": np.frombuffer(fields[b"items"], dtype=np.float32).reshape(rows, width),
                "feature_names": names,
                "features": np.frombuffer(fields[b"features"], dtype=np.float32).reshape(len(names), feature_width),
                "tower": np.frombuffer(fields[b"tower"], dtype=np.float32),
                "label_sum": float(header["label_sum"]), "weight_sum": float(header["weight_sum"])}
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"not a shared-row increment: {exc}") from None


def _sequence(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[2])


class SharedExchange:
    """Trainer ``partition`` of ``partitions``: publishes its increments to
    ``<stream>:shared:<partition>`` and reads the other partitions' (see the module).

    Args:
        redis: a URL or a ``redis.Redis`` client.
        stream: the events' stream name ``S`` (partition p reads ``S:p``).
        partitions: K (2 or more).
        partition: this trainer's partition, 0 .. K - 1.
    """

    def __init__(self, redis: Any, stream: str, partitions: int, partition: int) -> None:
        self._r = connect(redis)
        self.stream, self.partitions, self.partition = stream, partitions, partition
        self.dead = 0  # increments dead-lettered by this process

    def close(self) -> None:
        self._r.close()

    def key(self, partition: int) -> str:
        return f"{self.stream}:shared:{partition}"

    def publish(self, sequence: int, inc: dict[str, Any]) -> None:
        """Appends this trainer's increment number ``sequence`` (1, 2, ...) under the ID
        ``0-<sequence>``; one already there (written before a crash) is left as it is."""
        import redis as redis_module  # noqa: PLC0415

        try:
            self._r.xadd(self.key(self.partition), encode_increment(inc), id=f"0-{sequence}")
        except redis_module.ResponseError as exc:
            if "equal or smaller" not in str(exc):
                raise
            log.warning("increment %d of partition %d was already in %s: kept as it is", sequence, self.partition,
                        self.key(self.partition))

    def own_after(self, sequence: int) -> list[tuple[int, dict[str, Any] | None]]:
        """This trainer's increments numbered above ``sequence`` (published before a crash,
        after its last delta), in order."""
        return self._after(self.partition, sequence)

    def peers_after(self, applied: dict[str, int]) -> list[tuple[int, int, dict[str, Any] | None]]:
        """The other partitions' increments not added yet (``applied``: partition -> the last
        one added), as (partition, sequence, increment), each partition's in order."""
        out = []
        for q in range(self.partitions):
            if q != self.partition:
                out.extend((q, n, inc) for n, inc in self._after(q, applied.get(str(q), 0)))
        return out

    def _after(self, partition: int, sequence: int) -> list[tuple[int, dict[str, Any] | None]]:
        """Increments numbered above ``sequence``; a malformed entry comes as None (see
        :meth:`dead_letter`)."""
        out: list[tuple[int, dict[str, Any] | None]] = []
        start = f"(0-{sequence}"
        while True:
            entries = self._r.xrange(self.key(partition), start, "+", count=_READ_COUNT)
            for entry_id, fields in entries:
                try:
                    out.append((_sequence(entry_id), decode_increment(fields)))
                except ValueError as exc:
                    self.dead_letter(partition, _sequence(entry_id), str(exc))
                    out.append((_sequence(entry_id), None))
            if len(entries) < _READ_COUNT:
                return out
            start = f"({entries[-1][0].decode()}"

    def dead_letter(self, partition: int, sequence: int, reason: str) -> None:
        """An increment that cannot be added (malformed, or of another model's shape) is
        copied to ``<stream>:shared:dead`` with the reason, counted, and skipped."""
        self.dead += 1
        log.warning("increment %d of partition %d cannot be added (%s): dead-lettered, not applied", sequence,
                    partition, reason)
        self._r.xadd(f"{self.stream}:shared:dead", {"partition": str(partition), "sequence": str(sequence),
                                                    "reason": reason[:500]}, maxlen=10_000, approximate=True)
