"""The ``rtrec`` command line: demo, train, evaluate, recommend, similar, serve, consume, export.

``rtrec demo`` is the main job: it replays a stream (the built-in synthetic stream with
taste drift, or ``--data ratings.csv``) through three ways of keeping a model fresh —
learning from every event (realtime), refitting periodically, and never (static) — and
shows what real-time learning buys: a table on stdout, a PNG of the metric over time and
``report.json`` in ``--out``.

``rtrec consume`` is the trainer of a deployment fed through Redis Streams, ``rtrec serve
--follow`` its replicas, ``rtrec export`` writes a model's vectors (npz or parquet).

The commands that build a model take its options, including admission (``--min-count``)
and expiry (``--ttl``, ``--max-rows``), and side features for cold start
(``--item-features movies.csv``, ``--user-features``), given to every model they build.

Every subcommand takes ``--json`` for machine-readable output on stdout. Bad input ends
with exit code 2 (bad arguments) or 1 (bad data, missing file, ...) and one line on
stderr, never a traceback. Progress bars go to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .commands import COMMANDS
from .errors import PROG, CliError, one_line
from .options import build_parser
from .output import format_table, write_plot

__all__ = ["CliError", "build_parser", "format_table", "main", "write_plot"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rtrec`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success, 1 bad data or a failed operation, 2 bad arguments. Errors are
    one line on stderr.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # `rtrec` alone: what it can do, not an error
        parser.print_help()
        return 0
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            _unknown_options(parser, args.command, unknown)
    except SystemExit as exc:  # --help, --version, argument errors
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError, ImportError) as exc:
        # SnapshotError is a ValueError; FileNotFoundError/PermissionError are OSErrors.
        if os.environ.get("RTREC_DEBUG"):  # developers: the full traceback
            raise
        print(f"{PROG} {args.command}: error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1


def _unknown_options(parser: Any, command: str, unknown: list[str]) -> None:
    """Exit 2 naming the subcommand's --help (its options are there), with the closest
    option when one is near."""
    import difflib

    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]
    known = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
    first = unknown[0].split("=", 1)[0]
    close = difflib.get_close_matches(first, known, n=1, cutoff=0.6) if first.startswith("-") else []
    hint = f"; did you mean {close[0]}?" if close else ""
    sub.exit(2, f"{PROG} {command}: error: unrecognized arguments: {' '.join(unknown)}{hint} "
                f"(see {PROG} {command} --help)\n")
