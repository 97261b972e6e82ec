"""A read-only reader of a SQLite store: opened so that nothing beside the file appears."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from .._errors import StorageError
from ..storage import Checkpoint, StoredEvent, StoredSnapshot
from ..storage import _sqlite as lite
from ._errors import BadInput
from ._readonly import Reader, record, stream_infos, streams_query

_SQLITE_MAGIC = b"SQLite format 3\x00"
# The tables inspection reads; `leases` only matters to workers.
_SQLITE_NEEDED = frozenset(lite.TABLES) - {"leases"}

_SQLITE_STREAMS = "SELECT stream_type, stream_id, max(version), max(recorded_at) FROM events"
_SQLITE_TYPES = "SELECT DISTINCT stream_type FROM events"
_SQLITE_CHECKPOINTS = "SELECT name, position, state FROM checkpoints"


def sqlite_reader(name: str) -> Reader:
    """A reader of the SQLite store at `name`, which must exist and be a store already.

    A file without a `-wal` or `-journal` beside it has no writer (or none that wrote since the
    last one closed): it is opened `immutable`, because even a `mode=ro` connection creates the
    `-wal` and `-shm` files of a WAL database and cannot remove them. Otherwise a `mode=ro`
    connection reads through the writers' locks. Every read opens and closes its own
    connection, so a writer that starts or stops between reads is seen, and a writer closing
    last still removes its files.
    """
    file = _sqlite_file(name)
    where = f"SQLite file {file}"

    def connect() -> sqlite3.Connection:
        shared = os.path.exists(f"{file}-wal") or os.path.exists(f"{file}-journal")
        uri = f"{Path(file).as_uri()}?mode=ro" + ("" if shared else "&immutable=1")
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)

    def read(label: str, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            with closing(connect()) as conn:
                return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{where}: {label} failed: {exc}") from exc

    _check_sqlite_store(name, lambda sql: read("opening", sql))
    return Reader(
        record("sqlite (read-only)", _sqlite_reads(read, connect), lambda: None),
        where,
        lambda stream_type: stream_infos(
            read("listing streams", *streams_query(_SQLITE_STREAMS, "?", stream_type)),
            text_times=True,
        ),
        lambda: sorted(row[0] for row in read("listing stream types", _SQLITE_TYPES)),
        lambda: sorted(
            (Checkpoint(*row) for row in read("listing checkpoints", _SQLITE_CHECKPOINTS)),
            key=lambda c: c.name,
        ),
    )


def _sqlite_reads(
    read: Callable[..., list[Any]], connect: Callable[[], sqlite3.Connection]
) -> dict[str, Any]:
    """The reading callables of the `Storage` record, on the SQLite backend's own queries."""

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        if up_to is None:
            return lite._events(
                read("read_stream", lite._READ_STREAM, (stream_type, stream_id, after))
            )
        params = (stream_type, stream_id, after, up_to)
        return lite._events(read("read_stream", lite._READ_STREAM_UP_TO, params))

    def read_all(after: int, limit: int) -> Sequence[StoredEvent]:
        return lite._events(read("read_all", lite._READ_ALL, (after, limit)))

    def read_snapshot(stream_type: str, stream_id: str, up_to: int | None) -> StoredSnapshot | None:
        if up_to is None:
            rows = read("read_snapshot", lite._READ_SNAPSHOT, (stream_type, stream_id))
        else:
            rows = read("read_snapshot", lite._READ_SNAPSHOT_UP_TO, (stream_type, stream_id, up_to))
        return StoredSnapshot(*rows[0]) if rows else None

    def read_checkpoint(name: str) -> Checkpoint | None:
        rows = read("read_checkpoint", lite._READ_CHECKPOINT, (name,))
        return Checkpoint(*rows[0]) if rows else None

    def read_checkpoints(names: Sequence[str]) -> dict[str, Checkpoint]:
        found = (read_checkpoint(name) for name in sorted(set(names)))
        return {c.name: c for c in found if c is not None}

    def get_document(projection: str, key: str) -> str | None:
        rows = read("get_document", lite._GET_DOCUMENT, (projection, key))
        return str(rows[0][0]) if rows else None

    def get_documents(projection: str, keys: Sequence[str]) -> dict[str, str]:
        found = ((key, get_document(projection, key)) for key in keys)
        return {key: data for key, data in found if data is not None}

    @contextmanager
    def connection() -> Iterator[sqlite3.Connection]:
        with closing(connect()) as conn:
            yield conn

    return {
        "read_stream": read_stream,
        "read_all": read_all,
        "read_committed": read_all,  # one writer at a time: commit order is position order
        "read_snapshot": read_snapshot,
        "read_checkpoint": read_checkpoint,
        "read_checkpoints": read_checkpoints,
        "get_document": get_document,
        "get_documents": get_documents,
        "all_documents": lambda projection: read(
            "all_documents", lite._ALL_DOCUMENTS, (projection,)
        ),
        "last_position": lambda: int(read("last_position", lite._LAST_POSITION)[0][0]),
        "count_after": lambda position: int(
            read("count_after", lite._COUNT_AFTER, (position,))[0][0]
        ),
        "connection": connection,
    }


def _sqlite_file(name: str) -> str:
    """The absolute path of an existing regular file that starts like a SQLite database."""
    if name[:5].lower() == "file:":
        raise BadInput(f"{name!r} is a URI: give the path of the store's file")
    file = os.path.abspath(name)
    if not os.path.exists(file):
        raise BadInput(f"{name!r}: no such file (a store is never created by inspecting it)")
    if os.path.isdir(file):
        raise BadInput(f"{name!r} is a directory, not a store's file")
    if not os.path.isfile(file):
        raise BadInput(f"{name!r} is not a regular file")
    try:
        with open(file, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise BadInput(f"{name!r} cannot be read: {exc.strerror}") from exc
    if head != _SQLITE_MAGIC:
        empty = "is an empty file" if not head else "is not a SQLite database"
        raise BadInput(f"{name!r} {empty}, so not an eventsourcing_fn store")
    return file


def _check_sqlite_store(name: str, query: Callable[[str], list[Any]]) -> None:
    try:
        tables = {row[0] for row in query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except StorageError as exc:
        cause = exc.__cause__ or exc
        raise BadInput(f"{name!r} cannot be read as a SQLite database: {cause}") from exc
    missing = sorted(_SQLITE_NEEDED - tables)
    if missing:
        raise BadInput(
            f"{name!r} is a SQLite database but not an eventsourcing_fn store"
            f" (no table {', '.join(missing)})"
        )
