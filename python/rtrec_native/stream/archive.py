"""The trainer's event archive: every event it learns, appended to Parquet files, with its
log position — the source of scheduled refits, readable by ``rtrec train --data DIR`` and by
``pandas.read_parquet(DIR)``.

Layout of the directory::

    events-000000000000-000000052113-1765078123.parquet   finished: events 0 .. 52112 of
    events-000000052113-000000104860-1765081723.parquet   the model's life, archived at (Unix s)
    _journal.bin                                          events learned since the last file
    .events-....parquet.tmp                               a file being written (a crash leaves it)

Every event the consumer learns is numbered by the consumer's lifetime ``learned`` count (the
count recorded with the model in every snapshot and delta), and files are named by the
numbers they hold, so a reader knows exactly which events a file has without opening it.
Names starting with ``.`` or ``_`` are skipped by pandas and pyarrow: readers see finished
files only.

Exactly once, across ``kill -9``: the consumer appends a batch's events to the journal (one
checksummed frame, fsynced) *before* it writes the delta that records them as learned. After
a crash the model is restored from its newest durable file, which records how many events it
learned (``n``); :meth:`EventArchive.recover` keeps the journal's events numbered below ``n``
(the model holds them) and drops the rest (the model does not: the consumer learns them again
and archives them again). A frame cut short by the crash fails its length or checksum and is
dropped with the rest. A finished file only ever holds events a durable delta covers: the
journal is turned into a file (:meth:`EventArchive.rotate`) right after a delta, never
before one.
"""

from __future__ import annotations

import io
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._snapshot_dir import fsync_directory as _fsync_dir

__all__ = ["ArchiveFile", "EventArchive", "archive_files", "read_archive"]

_FILE = re.compile(r"^events-(\d{12})-(\d{12})-(\d+)\.parquet$")
_JOURNAL = "_journal.bin"
_FRAME = struct.Struct("<QI")  # payload length, crc32 of the payload
#: Columns of every file, in this order; label and timestamp are null where an event had none,
#: weight is null where the event had no weight (it was learned with weight 1).
COLUMNS = ("user", "item", "label", "weight", "timestamp", "entry")
#: The columns a model learns from (what a refit reads: the entry IDs would only cost memory).
LEARNED = ["user", "item", "label", "weight", "timestamp"]


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: PLC0415
        import pyarrow.ipc  # noqa: PLC0415
        import pyarrow.parquet  # noqa: PLC0415
    except ImportError:
        from .._extras import install_hint  # noqa: PLC0415

        raise ImportError(f"the event archive writes Parquet and needs pyarrow: {install_hint('parquet')}") from None
    return pyarrow


class ArchiveFile(NamedTuple):
    """A finished archive file: events ``first`` .. ``end - 1`` of the model's life, written
    at ``archived`` (Unix seconds)."""

    path: Path
    first: int
    end: int
    archived: int


def archive_files(directory: str | os.PathLike) -> list[ArchiveFile]:
    """The finished files in ``directory``, by event number."""
    directory = Path(directory)
    found = []
    for name in os.listdir(directory):
        match = _FILE.match(name)
        if match:
            found.append(ArchiveFile(directory / name, int(match.group(1)), int(match.group(2)), int(match.group(3))))
    found.sort(key=lambda f: f.first)
    return found


def read_archive(directory: str | os.PathLike, start: int = 0, end: int | None = None,
                 since: float | None = None, columns: list[str] | None = None) -> Any:
    """The archived events numbered ``start`` .. ``end - 1`` (None: all) as one pyarrow Table
    with the columns of :data:`COLUMNS` (or ``columns``), in learning order, None when there
    are none; ``since``: only files archived at or after this Unix time (a refit's window).
    Raises ValueError for a file that cannot be read (a corrupt file: the refit that reads it
    fails and is retried)."""
    pa = _pyarrow()
    tables = []
    for f in archive_files(directory):
        if f.end <= start or (end is not None and f.first >= end) or (since is not None and f.archived < since):
            continue
        try:
            table = pa.parquet.read_table(f.path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"archive file {f.path} cannot be read: {exc}") from exc
        if table.num_rows != f.end - f.first:
            raise ValueError(f"archive file {f.path} holds {table.num_rows} events, its name says {f.end - f.first}")
        lo = max(start - f.first, 0)
        hi = table.num_rows if end is None else min(end - f.first, table.num_rows)
        tables.append(table.slice(lo, hi - lo))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def table_columns(table: Any) -> tuple[Any, Any, Any, Any, Any]:
    """``(users, items, labels, weights, timestamps)`` of an archive table, for
    ``Recommender.fit``/``update``: a column that is null throughout is None (as the events
    were learned), and so are weights that are all 1 (the same steps, 8 bytes an event less);
    missing weights and labels within a column are 1."""
    def ids(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    def numbers(name: str, fill: float | None) -> np.ndarray | None:
        column = table.column(name)
        if column.null_count == len(column):
            return None
        if column.null_count and fill is not None:
            column = column.fill_null(fill)
        return column.to_numpy(zero_copy_only=False).astype(np.float64)

    weights = numbers("weight", 1.0)
    # A label missing among labels: an entry learned on its own without one, which counted
    # as a positive (label 1: the rule of the losses that take labels as optional).
    if weights is not None and bool(np.all(weights == 1.0)):
        weights = None
    return ids("user"), ids("item"), numbers("label", 1.0), weights, numbers("timestamp", None)


class EventArchive:
    """Appends the events a consumer learns to Parquet files under ``directory`` (see the
    module's docs for the layout and the exactly-once protocol).

    The consumer calls :meth:`append` after each learned batch, :meth:`sync` before each
    delta (the journal is then durable), and :meth:`rotate` after each delta (the journal
    becomes a finished file once it is ``rotate_seconds`` old or holds ``rotate_events``).

    Args:
        directory: where the files go (created if missing).
        retention_days: finished files archived more than this many days ago are removed at
            each rotation (None: kept for ever).
        rotate_seconds: seconds between finished files (one an hour by default).
        rotate_events: most events in the journal before it becomes a file.
    """

    def __init__(self, directory: str | os.PathLike, *, retention_days: float | None = None,
                 rotate_seconds: float = 3600.0, rotate_events: int = 5_000_000) -> None:
        self._pa = _pyarrow()
        if retention_days is not None and not (isinstance(retention_days, (int, float)) and retention_days > 0):
            raise ValueError(f"retention_days must be a number of days > 0 or None, got {retention_days!r}")
        if not (isinstance(rotate_seconds, (int, float)) and rotate_seconds > 0):
            raise ValueError(f"rotate_seconds must be a number of seconds > 0, got {rotate_seconds!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not os.access(self.directory, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(f"the archive directory {str(self.directory)!r} is not readable and writable")
        self._retention = None if retention_days is None else float(retention_days) * 86400.0
        self._rotate_seconds, self._rotate_events = float(rotate_seconds), int(rotate_events)
        self._journal = self.directory / _JOURNAL
        self._pending: list[Any] = []  # record batches appended, not yet in the journal
        self._pending_rows = 0
        self._next: int | None = None  # the number of the next event appended
        self._journal_first: int | None = None  # the first event in the journal (None: empty)
        self._journal_rows = 0
        self._journal_since = time.monotonic()
        self._recovered = False
        self.files_written = 0

    # ------------------------------------------------------------------ recovery

    def recover(self, durable: int) -> None:
        """Called once when the consumer starts, with the number of events its (restored)
        model learned: the journal keeps those events and drops any past them, and becomes
        a finished file at once. Events after ``durable`` in finished files (which the
        protocol never writes; a model restored from an older file would) are dropped too.
        An archive added to a model that learned before starts at its count."""
        self._pending, self._pending_rows = [], 0
        finished_end = max((f.end for f in archive_files(self.directory)), default=0)
        kept = []
        for first, table in self._read_journal():
            lo = max(finished_end - first, 0)  # already in a finished file (a crash after its rename)
            hi = min(durable - first, table.num_rows)
            if hi > lo:
                kept.append(table.slice(lo, hi - lo))
        for f in archive_files(self.directory):  # never written past a durable delta (but a model rolled back)
            if f.first >= durable:
                f.path.unlink()
            elif f.end > durable:
                table = self._pa.parquet.read_table(f.path).slice(0, durable - f.first)
                self._write_file(table, f.first)
                f.path.unlink()
        self._next = durable
        if kept:
            table = self._pa.concat_tables(kept, promote_options="default")
            self._write_file(table, durable - table.num_rows)
        self._journal.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._journal_first, self._journal_rows = None, 0
        self._journal_since = time.monotonic()
        for stale in self.directory.glob(".events-*.tmp"):
            stale.unlink(missing_ok=True)
        self._recovered = True

    def _read_journal(self) -> Iterator[tuple[int, Any]]:
        """(number of the first event, table) of each whole frame of the journal."""
        try:
            data = self._journal.read_bytes()
        except FileNotFoundError:
            return
        at = 0
        while at + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, at)
            payload = data[at + _FRAME.size:at + _FRAME.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                return  # cut short by a crash: this frame and anything after it were never durable
            reader = self._pa.ipc.open_stream(payload)
            table = reader.read_all()
            yield int(reader.schema.metadata[b"first"]), table
            at += _FRAME.size + length

    # ------------------------------------------------------------------ writing

    def append(self, first: int, users: Any, items: Any, labels: Any, weights: Any, timestamps: Any,
               entries: Any) -> None:
        """Events numbered ``first``, ``first + 1``, ... just learned (columns as given to
        ``update``; ``entries``: each event's log entry ID)."""
        if not self._recovered:
            raise RuntimeError("EventArchive.recover must be called before append")
        if first != self._next:
            raise ValueError(f"the archive expected event {self._next} next, got {first}")
        pa = self._pa
        n = len(users)
        if n == 0:
            return

        def numbers(values: Any) -> Any:
            return pa.nulls(n, pa.float64()) if values is None else pa.array(np.asarray(values, dtype=np.float64))

        batch = pa.record_batch([_ids(pa, users), _ids(pa, items), numbers(labels), numbers(weights),
                                 numbers(timestamps), pa.array(entries, pa.string())], names=list(COLUMNS))
        self._pending.append(batch)
        self._pending_rows += n
        self._next = first + n

    def sync(self) -> None:
        """Make the events appended so far durable in the journal (before the delta that
        records them). A failed write leaves the journal as it was; the events stay pending."""
        if not self._pending:
            return
        pa = self._pa
        table = pa.Table.from_batches(self._pending)
        first = self._next - self._pending_rows
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema.with_metadata({"first": str(first)})) as writer:
            writer.write_table(table)
        payload = sink.getvalue()
        with open(self._journal, "ab") as fh:
            size = fh.tell()
            try:
                fh.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
                fh.flush()
                os.fsync(fh.fileno())
            except BaseException:
                fh.truncate(size)
                raise
        if self._journal_first is None:
            self._journal_first = first
            self._journal_since = time.monotonic()
        self._journal_rows += self._pending_rows
        self._pending, self._pending_rows = [], 0

    def rotate(self, force: bool = False) -> bool:
        """After a delta: turn the journal into a finished file if it is due (or ``force``)
        and apply the retention; True if a file was written. Everything appended must have
        been synced and covered by a durable delta."""
        if self._pending:
            raise RuntimeError("EventArchive.rotate: sync (and write the delta) first")
        due = force or self._journal_rows >= self._rotate_events or \
            time.monotonic() - self._journal_since >= self._rotate_seconds
        if not due or self._journal_first is None:
            return False
        tables = [table for _, table in self._read_journal()]
        table = self._pa.concat_tables(tables, promote_options="default")
        if table.num_rows != self._journal_rows:
            raise OSError(f"the archive journal {self._journal} holds {table.num_rows} events, expected "
                          f"{self._journal_rows}")
        self._write_file(table, self._journal_first)
        self._journal.unlink()
        _fsync_dir(self.directory)
        self._journal_first, self._journal_rows = None, 0
        self._journal_since = time.monotonic()
        self._apply_retention()
        return True

    def _write_file(self, table: Any, first: int) -> None:
        now = int(time.time())
        name = f"events-{first:012d}-{first + table.num_rows:012d}-{now}.parquet"
        table = table.replace_schema_metadata(None)  # the journal's bookkeeping, not the data's
        tmp = self.directory / f".{name}.tmp"
        try:
            self._pa.parquet.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        self.files_written += 1

    def _apply_retention(self) -> None:
        if self._retention is None:
            return
        oldest = time.time() - self._retention
        for f in archive_files(self.directory):
            if f.archived < oldest:
                f.path.unlink(missing_ok=True)

    @property
    def next_event(self) -> int | None:
        """The number the next appended event gets (the model's learned count)."""
        return self._next


def _ids(pa: Any, values: Any) -> Any:
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return pa.array(array.astype(np.int64, copy=False))
    return pa.array([str(v) for v in array.tolist()] if array.dtype.kind != "U" else array, pa.string())
