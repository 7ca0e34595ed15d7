"""Item names on the command line: ``--catalog`` read once, given to every model a command
builds, and shown next to item IDs in tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CliError, cli_hints, one_line

CATALOG_FLAGS = {"id_col": "--item-id-col", "name_col": "--item-name-col"}


class Catalog:
    """Item IDs and names from ``--catalog``."""

    def __init__(self, path: Path, ids: np.ndarray, names: list[str | None]) -> None:
        self.path, self.ids, self.names = path, ids, names

    @property
    def n_named(self) -> int:
        return sum(name is not None for name in self.names)

    def apply(self, rec: Any) -> None:
        try:
            rec.set_item_names(self.ids, self.names)
        except (ValueError, TypeError) as exc:  # IdKindError is a TypeError
            raise CliError(f"--catalog {self.path}: {one_line(str(exc))}") from None

    def describe(self) -> str:
        return f"{self.n_named:,} item names from {self.path}"


def load_catalog(args: argparse.Namespace) -> Catalog | None:
    """The ``--catalog`` file, loaded (None without one)."""
    path = getattr(args, "catalog", None)
    if path is None:
        for flag in ("item_id_col", "item_name_col", "catalog_genres"):
            if getattr(args, flag, None):
                raise CliError(f"--{flag.replace('_', '-')} needs --catalog")
        return None
    from ..data import load_item_names

    try:
        ids, names = load_item_names(path, id_col=args.item_id_col, name_col=args.item_name_col,
                                     delimiter=getattr(args, "sep", None))
    except (ValueError, TypeError, OSError, ImportError) as exc:
        message = cli_hints(one_line(str(exc)) or type(exc).__name__, CATALOG_FLAGS)
        raise CliError(f"--catalog: {message if str(path) in message else f'{path}: {message}'}") from None
    return Catalog(Path(path), ids, names)


def item_label(item: Any) -> Any:
    """A numpy scalar as a plain Python value (for JSON and tables)."""
    return item.item() if isinstance(item, np.generic) else item
