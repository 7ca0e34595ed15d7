"""``rtrec recommend`` and ``rtrec similar``: retrieval from a saved model, with the filters
of :meth:`rtrec_native.Recommender.recommend` (``--items``, ``--exclude``, ``--tags``) and
anonymous visitors (``--history``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._core import IdKindError
from .errors import CliError
from .output import print_json


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """The candidate filters, shared by ``recommend`` and ``similar``."""
    parser.add_argument("--items", metavar="ID,ID,...",
                        help="rank only these items (an allow-list; unknown IDs are ignored)")
    parser.add_argument("--exclude", metavar="ID,ID,...", help="never these items (a deny-list)")
    parser.add_argument("--tags", metavar="TAG,TAG,...",
                        help="only items carrying all these item features (e.g. genre=Comedy)")


def load_model(path: Path) -> Any:
    from .steps import load_saved_model  # noqa: PLC0415

    return load_saved_model(path, None)


def print_ranked(items: list, names: list, scores: Any, after_row: Callable[[int, int], None] | None = None) -> None:
    """A ranked list as a table headed ``rank  item  name  score`` (``-`` where no name is
    known); ``after_row(i, indent)`` may print lines under row i."""
    rows = [[str(rank), str(item), name or "-", f"{score:.4f}"]
            for rank, (item, name, score) in enumerate(zip(items, names, scores, strict=True), start=1)]
    headers = ("rank", "item", "name", "score")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join([cells[0].rjust(widths[0]), cells[1].rjust(widths[1]), cells[2].ljust(widths[2]),
                          cells[3].rjust(widths[3])])

    print(line(headers))
    for i, row in enumerate(rows):
        print(line(row))
        if after_row is not None:
            after_row(i, widths[0] + 2)


def cli_id(rec: Any, text: str, side: str) -> int | str:
    """A command-line ID is text: an integer ID unless the model's IDs on that side are strings."""
    kind = rec.user_id_kind if side == "user" else rec.item_id_kind
    if kind == "str":
        return text
    try:
        return int(text)
    except ValueError:
        if kind == "int":
            raise CliError(f"this model's {side} IDs are integers, got {text!r}") from None
        return text


def id_list(rec: Any, text: str | None, option: str) -> list | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip() != ""]
    try:
        return [cli_id(rec, p, "item") for p in parts]
    except CliError as exc:
        raise CliError(f"{option}: {exc}") from None


def filters(rec: Any, args: argparse.Namespace) -> dict[str, Any]:
    tags = None if args.tags is None else [t.strip() for t in args.tags.split(",") if t.strip() != ""]
    return {"items": id_list(rec, args.items, "--items"), "exclude": id_list(rec, args.exclude, "--exclude"),
            "tags": tags}


def ranked(call: Any) -> tuple[list, np.ndarray]:
    """Runs a retrieval call; bad input (an unknown tag, IDs of the wrong kind) is one line."""
    try:
        ids, scores = call()
    except KeyError as exc:
        raise CliError(str(exc.args[0]) if exc.args else "not found") from None
    except (IdKindError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return [v.item() if isinstance(v, np.generic) else v for v in ids], scores


def cmd_similar(args: argparse.Namespace) -> int:
    rec = load_model(args.model)
    item = cli_id(rec, args.item, "item")
    items, scores = ranked(lambda: rec.similar_items(item, k=args.k, **filters(rec, args)))
    if args.json:
        print_json({"item": item, "k": args.k, "items": items, "names": rec.item_names(items) if items else [],
                    "scores": [float(s) for s in scores]})
        return 0
    print(f"top {len(items)} similar to item {args.item}:")
    print_ranked(items, rec.item_names(items) if items else [], scores)
    return 0


def cmd_history(args: argparse.Namespace, rec: Any) -> int:
    """``rtrec recommend --history a,b,c``: an anonymous visitor known by these items."""
    history = id_list(rec, args.history, "--history") or []
    items, scores = ranked(lambda: rec.recommend_for_history(history, k=args.k, diversity=args.diversity,
                                                             **filters(rec, args)))
    if args.json:
        print_json({"history": history, "k": args.k, "diversity": args.diversity, "items": items,
                    "names": rec.item_names(items) if items else [], "scores": [float(s) for s in scores]})
        return 0
    print(f"top {len(items)} for an anonymous visitor with {len(history)} items:")
    print_ranked(items, rec.item_names(items) if items else [], scores)
    return 0
