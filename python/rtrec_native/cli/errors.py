"""What every part of the command line shares: its name and its one kind of error."""

from __future__ import annotations

import re

PROG = "rtrec"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def one_line(message: str) -> str:
    """A message on one line (an error is one line on stderr, whatever it holds)."""
    return " ".join(str(message).split())


_PYTHON_HINT = re.compile(r"\bpass (\w+)=\.\.\.")
#: The library's column arguments and the flags that set them on the command line.
EVENT_COLUMN_FLAGS = {"user_col": "--user-col", "item_col": "--item-col", "label_col": "--label-col",
                      "time_col": "--time-col"}


def cli_hints(message: str, flags: dict[str, str]) -> str:
    """A library message for a command-line user: "pass user_col=..." becomes "give
    --user-col NAME" for the arguments in ``flags`` (the CLI has no Python arguments)."""
    def swap(match: re.Match[str]) -> str:
        flag = flags.get(match.group(1))
        return match.group(0) if flag is None else f"give {flag} NAME"

    return _PYTHON_HINT.sub(swap, message)
