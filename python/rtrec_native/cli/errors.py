"""What every part of the command line shares: its name and its one kind of error."""

from __future__ import annotations

PROG = "rtrec"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def one_line(message: str) -> str:
    """A message on one line (an error is one line on stderr, whatever it holds)."""
    return " ".join(str(message).split())
