"""Notebook integration: a `Failure` holding one of our errors shows as that error's table."""

from __future__ import annotations

import sys
from typing import Any

from returns.result import Failure

from ._errors import EventSourcingError


def show_failures_as_tables() -> None:
    """In a running IPython (Jupyter) session, render `Failure(our error)` as a table, the
    reason first. `Failure` is the `returns` package's class, so the session is told how."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(Failure, _failure_html)


def _failure_html(failure: Failure[Any]) -> str | None:
    error = failure.failure()
    if not isinstance(error, EventSourcingError):
        return None  # not ours: the notebook shows the repr as usual
    from ._html import error_html

    return error_html(error, caption="Failure")
