"""Persistence of a :class:`~rtrec_native.Recommender`: snapshots, deltas and the input
stream's position, written atomically by the core and verified whole before use."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from . import _core
from . import _validation as check


def _path(path: str | os.PathLike) -> str:
    """A file path for the core; a NUL byte would silently cut it short there."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\x00" in text:
        raise ValueError(f"a file path must not contain a NUL character, got {text!r}")
    return text


_Model = TypeVar("_Model", bound="PersistenceMixin")


class PersistenceMixin:
    """Snapshot and delta methods of :class:`~rtrec_native.Recommender` (see its docs)."""

    _model: Any
    _attach: Any  # Recommender._attach: the one place a model's state is set

    @property
    def source_position(self) -> str:
        """Where the model's input stream stood (e.g. the last stream entry ID learned), as
        set by its feeder: saved in every snapshot and delta and restored by ``load`` and
        ``apply_delta``, so a consumer restarting from a file knows which events it holds.
        Empty until set."""
        return self._model.source_position

    @source_position.setter
    def source_position(self, position: str) -> None:
        if not isinstance(position, str):
            raise TypeError(f"source_position must be a str, got {type(position).__name__}")
        self._model.source_position = position

    def save(self, path: str | os.PathLike) -> None:
        """Write a snapshot of the whole model (parameters, optimizer state, metadata, IDs,
        seen items) to ``path``, atomically: a temporary file in the same directory is
        written, fsynced and renamed over ``path``, so a crash leaves the previous file
        intact. Other threads may keep predicting and updating while it is written; the file
        then holds each row as it was when copied (Hogwild-consistent), and every ID that
        existed when the save began."""
        self._model.save(_path(path))

    def save_delta(self, path: str | os.PathLike) -> None:
        """Write the rows that changed since the previous delta (or, for the first one, since
        the first ``save``): values, optimizer state, metadata, seen items, new IDs included.
        Deltas are numbered 1, 2, ... within the model's lineage (started by its first
        ``save``); a copy loaded from any snapshot of the lineage applies the deltas that
        follow that snapshot, and a copy that applied every delta keeps going across later
        snapshots. Atomic like ``save``. Raises ``DeltaOrderError`` if no full snapshot was
        saved or loaded first."""
        self._model.save_delta(_path(path))

    def apply_delta(self, path: str | os.PathLike) -> None:
        """Apply the next delta of the lineage this copy was loaded from (see
        ``save_delta``). The file is verified whole first; a delta of another lineage, out of
        order or after a gap raises ``DeltaOrderError`` and changes nothing. Readers in other
        threads keep serving while the rows are overwritten."""
        path = _path(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no delta file at {path!r}")
        self._model.apply_delta(path)

    @property
    def snapshot_position(self) -> tuple[int, int]:
        """(lineage id, number of the last delta saved or applied); (0, 0) before the
        first ``save``/``load``."""
        return self._model.lineage, self._model.sequence

    @classmethod
    def load(cls: type[_Model], path: str | os.PathLike, num_threads: int | None = None) -> _Model:
        """Read a snapshot written by ``save``. The whole file is verified (magic, version,
        checksums) before a model is built; a truncated, corrupted, wrong-version or
        non-snapshot file raises ``rtrec_native.SnapshotError`` (a ValueError) and nothing
        is returned. The loaded model predicts, recommends and (with one thread and the
        same calls) keeps training exactly like the saved one. It continues the saved
        model's delta lineage: it can apply the deltas written after the snapshot, or, as a
        restarted trainer, publish the next ones."""
        path = _path(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no snapshot file at {path!r}")
        threads = check.num_threads(num_threads)
        self = cls.__new__(cls)
        self._attach(_core.Model.load(path), threads, num_threads)
        return self
