"""What the command line reports in one line instead of a traceback."""

from __future__ import annotations

from .._errors import StorageError


class BadInput(Exception):
    """A bad store, app or argument: the user's to fix, reported in one line with exit code 2."""


class ReadOnlyStore(StorageError):
    """Inspection opened the store read-only, and something tried to write to it."""


def one_line(exc: BaseException | str) -> str:
    """A message folded onto one line: drivers' messages often span several."""
    return " ".join(str(exc).split())
