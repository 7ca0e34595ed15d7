"""The files of a publisher's directory (see :mod:`rtrec_native.replication` for the layout):
their names, listing them, and applying the deltas that follow a model's position."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .recommender import Recommender

#: A snapshot of a new lineage waiting to take the directory over (see ``Publisher``): whole
#: when present (the core writes it by rename), and newer than every other file there.
STAGED = "staged-snapshot.rtrec"

_SNAPSHOT = re.compile(r"^snapshot-(\d{8,})\.rtrec$")
_DELTA = re.compile(r"^delta-(\d{8,})\.rtrec$")


def _snapshot_name(sequence: int) -> str:
    return f"snapshot-{sequence:08d}.rtrec"


def _delta_name(sequence: int) -> str:
    return f"delta-{sequence:08d}.rtrec"


def _listing(directory: Path) -> tuple[list[int], list[int]]:
    """Sequence numbers of the snapshots and of the deltas in `directory`, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    snapshots = sorted(int(m.group(1)) for m in map(_SNAPSHOT.match, names) if m)
    deltas = sorted(int(m.group(1)) for m in map(_DELTA.match, names) if m)
    return snapshots, deltas


def _file_identity(path: Path) -> tuple[int, int, int]:
    """Tells a replaced file from the original (a new file may reuse the inode number)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _apply_following(rec: Recommender, directory: Path) -> int:
    """Apply the deltas that follow `rec`'s position, in order; returns how many."""
    applied = 0
    while True:
        path = directory / _delta_name(rec.snapshot_position[1] + 1)
        try:
            rec.apply_delta(path)
        except FileNotFoundError:
            return applied
        applied += 1


def fsync_directory(directory: Path) -> None:
    """Makes the renames and removals made in ``directory`` durable (POSIX: fsync the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
