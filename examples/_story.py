"""What the examples' `main`s share: where the story is stored, how outcomes read, portable SQL."""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from returns.result import Failure, Result

from eventsourcing_fn import (
    CommandError,
    EventSourcingError,
    Outcome,
    ReactionError,
    StorageError,
    StreamClosedError,
)
from eventsourcing_fn.storage import Storage, postgres_storage, sqlite_storage


def open_storage(target: str, *, schema: str) -> Storage:
    """A SQLite file at `target`, or PostgreSQL (tables in `schema`, the SQL projections' own
    tables included) when it is a `postgresql://` URL."""
    if not _is_postgres(target):
        return sqlite_storage(target)
    return postgres_storage(target, schema=schema)


@contextmanager
def storage_from(argv: Sequence[str] | None, example: str, about: str) -> Iterator[Storage]:
    """The storage `python -m examples.<example> [STORE] [--schema NAME]` asks for; closed after.

    Without STORE, a SQLite file in a temporary directory that is deleted afterwards.
    """
    parser = argparse.ArgumentParser(prog=f"python -m examples.{example}", description=about)
    parser.add_argument(
        "store",
        nargs="?",
        help="a SQLite file or a postgresql:// URL (default: a file in a temporary directory)",
    )
    parser.add_argument(
        "--schema",
        default=f"examples_{example}",
        help="the PostgreSQL schema of the store and its tables (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        target: str = args.store or str(
            Path(stack.enter_context(tempfile.TemporaryDirectory())) / f"{example}.db"
        )
        try:
            storage = open_storage(target, schema=args.schema)
        except (StorageError, ValueError) as exc:  # a bad path or URL: one line, exit code 2
            parser.error(str(exc))
        stack.callback(storage.close)
        postgres = _is_postgres(target)
        print(f"store: {f'PostgreSQL, schema {args.schema}' if postgres else f'SQLite, {target}'}")
        yield storage


def told(result: Result[Outcome[Any], EventSourcingError]) -> str:
    """One line: the events a command appended (its cascade included), or why it was rejected."""
    if isinstance(result, Failure):
        return f"rejected: {why(result.failure())}"
    outcome = result.unwrap()
    events = [*outcome.events, *outcome.cascade]
    return ", ".join(type(r.event).__name__ for r in events) or "nothing to do"


def why(error: BaseException) -> str:
    """The innermost reason of a library error: what the domain said, not the plumbing."""
    reason: object = error
    while isinstance(reason, CommandError | ReactionError) and reason.reason is not None:
        reason = reason.reason
    if isinstance(reason, StreamClosedError):  # its message spells out the whole stream id
        return f"{type(reason).__name__}: the stream is closed"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return repr(reason)


def _is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def sql(conn: Any, query: str) -> str:
    """`query`, written with `?` placeholders, in the paramstyle of `conn` (psycopg's is `%s`)."""
    return query if isinstance(conn, sqlite3.Connection) else query.replace("?", "%s")
