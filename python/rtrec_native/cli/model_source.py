"""Where a serving or training process starts from: ``--model`` (a saved file) and
``--snapshot-dir`` (a directory a publisher writes), and the one rule that joins them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import CliError

_SNAPSHOT = re.compile(r"^snapshot-(\d{8,})\.rtrec$")


def directory_lineage(directory: Path | None) -> int | None:
    """The lineage of the newest snapshot in ``directory`` (None: no snapshot there)."""
    from .. import _core

    if directory is None:
        return None
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = sorted((int(m.group(1)), name) for name in names if (m := _SNAPSHOT.match(name)))
    for _, name in reversed(found):
        try:
            return int(_core.peek_snapshot(str(Path(directory) / name))[1])
        except (FileNotFoundError, ValueError):  # pruned meanwhile, or unreadable: try the older one
            continue
    return None


def start_model(model: Path | None, snapshot_dir: Path | None, threads: int | None) -> tuple[Any, str] | None:
    """The model to start from, and a phrase saying where it came from (None: neither given
    nor found, the caller makes a new model).

    - ``snapshot_dir`` holds a model: it is resumed. With ``model`` too, the file must be
      of the same lineage (the directory's model continued); another lineage is an error
      that names both choices, and the directory is left as it is.
    - Else ``model`` is loaded (and, with ``snapshot_dir``, published there from now on).
    """
    from .. import _core
    from ..recommender import Recommender
    from ..replication import restore_latest

    file_lineage = None
    if model is not None:
        if not Path(model).is_file():
            raise CliError(f"model file not found: {model}")
        file_lineage = int(_core.peek_snapshot(str(model))[1])
    dir_lineage = directory_lineage(snapshot_dir)
    if dir_lineage is not None:
        if model is not None and file_lineage != dir_lineage:
            raise CliError(f"--snapshot-dir {snapshot_dir} already holds another model than --model {model} "
                           f"(lineage {dir_lineage:x}, the file {file_lineage:x}): drop --model to resume the "
                           f"directory's model, or give a new --snapshot-dir to start from {model}")
        rec = restore_latest(snapshot_dir, num_threads=threads)
        if rec is not None:
            return rec, f"resumed from {snapshot_dir}" + (f" (which continues {model})" if model else "")
    if model is not None:
        rec = Recommender.load(model, num_threads=threads)
        return rec, f"loaded {model}" + (f", publishing to {snapshot_dir}" if snapshot_dir else "")
    return None
