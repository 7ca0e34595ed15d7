"""Feedback through a log: a producer helper, the trainer's consumer and delta fan-out.

::

    from rtrec_native.stream import Producer, Consumer, RedisStreamSource, RedisAnnouncer

    Producer("redis://127.0.0.1:6379/0").send("alice", "sku-42", weight=3.0)   # XADD rtrec:events * ...

    source = RedisStreamSource("redis://127.0.0.1:6379/0", "rtrec:events", group="trainers")
    rec = restore_latest("model/") or Recommender(loss="bpr", num_threads=1, seed=0)
    consumer = Consumer(rec, source, "model/",
                        announce=RedisAnnouncer("redis://127.0.0.1:6379/0", "rtrec:events:deltas"))
    consumer.run()                                   # what `rtrec consume` does

    replica = rt.Replica("model/", redis="redis://127.0.0.1:6379/0")   # follows the announcements

The entry format is in :mod:`rtrec_native.stream.entries` (one event per entry) and
:mod:`rtrec_native.stream.packed` (many, ``Producer(..., pack=N)``); the exactly-once contract a source
keeps is :class:`EventSource`'s (a Kafka source would implement the same five methods).
:class:`EventArchive` keeps every learned event in Parquet files and :class:`Refitter` refits
the model on them on a schedule (``Consumer(..., archive=..., refit=...)``).
Needs the ``[stream]`` extra (the ``redis`` client), imported only when a Redis class is used.
"""

from .archive import EventArchive, read_archive
from .consumer import Consumer, ConsumerState
from .entries import FIELDS, REASONS, EntryError, EntryParser
from .fanout import DeltaFeed, RedisAnnouncer
from .packed import encode as encode_packed
from .partitions import MAX_PARTITIONS, partition_of
from .producer import Producer
from .redis_source import DEAD_SUFFIX, RedisStreamSource
from .refit import Refitter
from .shared import SharedExchange
from .source import Entry, EventSource, StreamLost

__all__ = [
    "DEAD_SUFFIX",
    "FIELDS",
    "MAX_PARTITIONS",
    "REASONS",
    "Consumer",
    "ConsumerState",
    "DeltaFeed",
    "Entry",
    "EntryError",
    "EntryParser",
    "EventArchive",
    "EventSource",
    "Producer",
    "RedisAnnouncer",
    "RedisStreamSource",
    "Refitter",
    "SharedExchange",
    "StreamLost",
    "encode_packed",
    "partition_of",
    "read_archive",
]
