"""Vector export: a model's item and user vectors for an ANN index (faiss, ...) or another
system (``rtrec export``).

For any user, ranking items by ``user_vector @ item_vector + item_bias`` is the order of
``Recommender.recommend(user, exclude_seen=False)`` (see ``Recommender.item_vectors``); the
user's bias and the global bias shift every item's score alike, so they are exported for
scores, not needed for the order.

Formats:
  npz      one file: ``item_ids``, ``item_vectors`` (float32 [n, dim]), ``item_biases``, the
           same for ``user_``, and ``meta`` (a JSON string). String IDs are a numpy unicode
           array, so ``np.load(path)`` needs no pickle.
  parquet  a directory with ``items.parquet`` and ``users.parquet``: columns ``id``, ``bias``
           and ``vector`` (a fixed-size list of float32); the JSON ``meta`` is in the schema
           metadata under ``rtrec``. Needs pyarrow (the ``[parquet]`` extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._extras import install_hint
from .recommender import Recommender

__all__ = ["FORMATS", "SIDES", "export_vectors"]

FORMATS = ("npz", "parquet")
SIDES = ("item", "user")


def _meta(rec: Recommender) -> dict[str, Any]:
    params, stats = rec.get_params(), rec.stats()
    lineage, sequence = rec.snapshot_position
    return {"model": params["model"], "dim": params["dim"], "loss": params["loss"],
            "global_bias": float(stats["global_bias"]), "lineage": lineage, "sequence": sequence,
            "source_position": rec.source_position,
            "score": "global_bias + user_bias + item_bias + user_vector . item_vector"}


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """IDs as int64, or as a numpy unicode array (an object array would need pickle)."""
    return ids.astype(str) if ids.dtype == object else ids


def export_vectors(rec: Recommender, path: str | os.PathLike, format: str = "npz",
                   sides: tuple[str, ...] = SIDES) -> dict[str, Any]:
    """Write ``rec``'s vectors of ``sides`` (``"item"``, ``"user"``) to ``path`` in ``format``
    (see the module's text); returns a summary (what was written, rows per side, meta).
    The file appears whole (written aside, then renamed)."""
    if not isinstance(rec, Recommender):
        raise TypeError(f"rec must be a Recommender, got {type(rec).__name__}")
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if isinstance(sides, str) or not sides or any(side not in SIDES for side in sides):
        raise ValueError(f"sides: expected a non-empty tuple of {', '.join(map(repr, SIDES))}, got {sides!r}")
    path = Path(path)
    meta = _meta(rec)
    tables = {side: (rec.item_vectors() if side == "item" else rec.user_vectors()) for side in dict.fromkeys(sides)}
    if format == "npz":
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
        for side, (ids, vectors, biases) in tables.items():
            arrays[f"{side}_ids"] = _plain_ids(ids)
            arrays[f"{side}_vectors"], arrays[f"{side}_biases"] = vectors, biases
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # np.savez would add it anyway
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, path)
        files = [str(path)]
    else:
        files = _write_parquet(path, tables, meta)
    return {"format": format, "files": files, "rows": {side: len(t[0]) for side, t in tables.items()}, "meta": meta}


def _write_parquet(directory: Path, tables: dict[str, tuple], meta: dict[str, Any]) -> list[str]:
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("parquet export needs pyarrow: " + install_hint("parquet")) from exc
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for side, (ids, vectors, biases) in tables.items():
        dim = vectors.shape[1]
        vector_column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim)
        table = pa.table({"id": pa.array(_plain_ids(ids)), "bias": pa.array(biases, type=pa.float32()),
                          "vector": vector_column})
        table = table.replace_schema_metadata({"rtrec": json.dumps({**meta, "side": side})})
        path = directory / f"{side}s.parquet"
        partial = directory / f".{side}s.parquet.partial"
        pq.write_table(table, partial)
        os.replace(partial, path)
        files.append(str(path))
    return files
