"""SQLite storage: one database file shared by threads and processes, stdlib `sqlite3` only."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from .._errors import StorageDataError, StorageError, TransientStorageError
from ._record import (
    Checkpoint,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
)
from ._shared import (
    FairLock,
    Payload,
    StreamReader,
    as_stored,
    refuse_negative,
    stream_starts,
    transactions,
)

_T = TypeVar("_T")

_SCHEMA = """\
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,  -- log order: commit order, as writers are serialised
    stream_type TEXT NOT NULL, stream_id TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL,  -- data: JSON
    event_id TEXT NOT NULL,  -- canonical UUID text
    recorded_at TEXT NOT NULL,  -- ISO 8601 in UTC with microseconds: sorts as time does
    actor_id TEXT, correlation_id TEXT, causation_id TEXT, metadata TEXT NOT NULL,
    UNIQUE (stream_type, stream_id, version)
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_type TEXT NOT NULL, stream_id TEXT NOT NULL, version INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (stream_type, stream_id, version)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, state TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    projection TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (projection, key)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL  -- expires: unix time
);
"""
TABLES = (  # every table the store keeps, in the order they are created
    "events",
    "snapshots",
    "checkpoints",
    "documents",
    "leases",
)

_BEGIN = "BEGIN IMMEDIATE"
_COMMIT = "COMMIT"
_COUNT_TABLES = (
    "SELECT count(*) FROM sqlite_master"
    " WHERE type = 'table'"
    " AND name IN ('events', 'snapshots', 'checkpoints', 'documents', 'leases')"
)
_WRITE_NOTHING = "DELETE FROM checkpoints WHERE 0"
_LAST_POSITION = "SELECT coalesce(max(position), 0) FROM events"
_COUNT_AFTER = "SELECT count(*) FROM events WHERE position > ?"
# One machine shares one clock, so a lease's end is plain unix time.
_LEASE = (
    "INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
    " WHERE leases.owner = excluded.owner OR leases.expires < ? RETURNING owner"
)
_RELEASE = "DELETE FROM leases WHERE name = ? AND owner = ?"
_WAKE_EVERY = 0.02  # seconds between looks at the file's change counter while waiting
_STREAM_END = "SELECT coalesce(max(version), 0) FROM events WHERE stream_type = ? AND stream_id = ?"
# The first stream's end and the log's, in one statement: positions follow the log's end.
_STREAM_AND_LOG_END = (
    "SELECT coalesce(max(version), 0), (SELECT coalesce(max(position), 0) FROM events)"
    " FROM events WHERE stream_type = ? AND stream_id = ?"
)
_INSERT_EVENTS = (
    "INSERT INTO events (stream_type, stream_id, version, position, type, schema_version, data,"
    " event_id, recorded_at, actor_id, correlation_id, causation_id, metadata) VALUES "
)
_EVENT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 999 // 13  # rows of one INSERT, each 13 parameters: in any SQLite's limit
# Columns in `StoredEvent` field order, so a row maps onto the constructor positionally.
_EVENT_COLUMNS = (
    "SELECT stream_type, stream_id, version, position, type, schema_version, data, event_id,"
    " recorded_at, actor_id, correlation_id, causation_id, metadata FROM events"
)
_READ_STREAM = (
    f"{_EVENT_COLUMNS} WHERE stream_type = ? AND stream_id = ? AND version > ? ORDER BY version"
)
_READ_STREAM_UP_TO = (
    f"{_EVENT_COLUMNS} WHERE stream_type = ? AND stream_id = ? AND version > ? AND version <= ?"
    " ORDER BY version"
)
_READ_ALL = f"{_EVENT_COLUMNS} WHERE position > ? ORDER BY position LIMIT ?"
# What folding a stream needs of each row, in `Payload` order.
_PAYLOAD_COLUMNS = "SELECT version, type, schema_version, data FROM events"
_READ_PAYLOADS = (
    f"{_PAYLOAD_COLUMNS} WHERE stream_type = ? AND stream_id = ? AND version > ? ORDER BY version"
)
_READ_PAYLOADS_UP_TO = (
    f"{_PAYLOAD_COLUMNS} WHERE stream_type = ? AND stream_id = ? AND version > ?"
    " AND version <= ? ORDER BY version"
)
_SNAPSHOT_COLUMNS = "SELECT stream_type, stream_id, version, snapshot_version, data FROM snapshots"
_READ_SNAPSHOT = (
    f"{_SNAPSHOT_COLUMNS} WHERE stream_type = ? AND stream_id = ? ORDER BY version DESC LIMIT 1"
)
_READ_SNAPSHOT_UP_TO = (
    f"{_SNAPSHOT_COLUMNS} WHERE stream_type = ? AND stream_id = ? AND version <= ?"
    " ORDER BY version DESC LIMIT 1"
)
_WRITE_SNAPSHOT = (
    "INSERT OR REPLACE INTO snapshots (stream_type, stream_id, version, snapshot_version, data)"
    " VALUES (?, ?, ?, ?, ?)"
)
_READ_CHECKPOINT = "SELECT name, position, state FROM checkpoints WHERE name = ?"
_WRITE_CHECKPOINT = (
    "INSERT INTO checkpoints (name, position, state) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state"
)
_GET_DOCUMENT = "SELECT data FROM documents WHERE projection = ? AND key = ?"
_GET_DOCUMENTS_IN = "SELECT key, data FROM documents WHERE projection = ? AND key IN"
_READ_CHECKPOINT_IN = "SELECT name, position, state FROM checkpoints WHERE name IN"
_CHUNK = 500  # keys per IN list, well under SQLite's limit on parameters
_PUT_DOCUMENT = (
    "INSERT INTO documents (projection, key, data) VALUES (?, ?, ?)"
    " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
)
_DELETE_DOCUMENT = "DELETE FROM documents WHERE projection = ? AND key = ?"
# Default BINARY collation orders UTF-8 bytes, which is code point order: Python's `sorted`.
_ALL_DOCUMENTS = "SELECT key, data FROM documents WHERE projection = ? ORDER BY key"
_CLEAR_DOCUMENTS = "DELETE FROM documents WHERE projection = ?"

_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write transaction
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_DAMAGED_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

# Bumped in a forked child: connections inherited across fork() must never be used there.
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


def sqlite_schema() -> str:
    """The DDL `sqlite_storage` runs (idempotently) on a new database file."""
    return _SCHEMA


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced and knows which fork generation opened it."""

    __slots__ = ("__weakref__", "fork")
    fork: int


class _Transaction:
    """The connection of the current outermost `transaction()`; `failed` once a write faulted."""

    __slots__ = ("conn", "failed", "savepoints")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failed = False
        self.savepoints = 0


def sqlite_storage(path: str | os.PathLike[str]) -> Storage:
    """A storage in the SQLite file at `path`, created with its schema if missing.

    `path` names a file, never a URI: the store must write the file, in WAL mode, shared by
    threads and processes, which is just what URI options such as `mode=ro`, `immutable`,
    `nolock` and `mode=memory` switch off. A name starting with `file:` raises `ValueError`
    (give the absolute path of a file called that); so do `""` and `":memory:"`, whose databases
    are private to one connection (use `memory_storage()` for a store in memory).

    The file is opened and checked at construction: a directory, a missing parent directory, a
    file the store cannot write, or one that is not a SQLite database (or whose tables cannot be
    read) raises `StorageError` here, naming the path. Any later `sqlite3` fault surfaces as
    `StorageError` naming the path. One connection per thread; `transaction()` joins nesting
    calls and every callable inside it uses the transaction's connection. The threads of one
    storage take turns to write in the order they asked (other processes wait through SQLite's
    busy timeout).
    """
    name = os.fspath(path)
    file = _file_path(name)
    local = threading.local()
    opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
    orphans: list[sqlite3.Connection] = []  # inherited over fork(): kept, never used or closed
    guard = threading.Lock()
    turns = FairLock()
    closed = False
    current: ContextVar[_Transaction | None] = ContextVar("sqlite_transaction", default=None)

    def connection() -> sqlite3.Connection:
        conn: _Connection | None = getattr(local, "conn", None)
        if conn is not None and conn.fork == _forks[0]:
            return conn
        with guard:
            if closed:
                raise StorageError(f"SQLite database {name!r}: storage is closed")
            if conn is not None:
                orphans.append(conn)
            conn = _open(file)
            opened.add(conn)
        local.conn = conn
        return conn

    def take_turn(what: str | Callable[[], str]) -> bool:
        """Wait for this storage's other threads' write transactions, first come first served:
        SQLite's busy handler sleeps and retries, letting some threads write again and again
        while others wait. False when this thread's own transaction holds the turn."""
        try:
            return turns.acquire(_BUSY_TIMEOUT)
        except TimeoutError as exc:
            doing = what if isinstance(what, str) else what()
            raise TransientStorageError(
                f"SQLite database {name!r}: {doing} failed: other threads of this process kept"
                f" writing for {_BUSY_TIMEOUT} s"
            ) from exc

    # `what` names the operation for an error message: built only when one is raised.
    def write(what: Callable[[], str], work: Callable[[sqlite3.Connection], _T]) -> _T:
        tx = current.get()
        if tx is not None:
            try:
                return work(tx.conn)
            except VersionConflict:
                raise  # checked before anything is written
            except sqlite3.Error as exc:
                tx.failed = True  # something may be half-written: the transaction must not commit
                raise _fault(name, what, exc) from exc
            except BaseException:
                tx.failed = True
                raise
        held = take_turn(what)
        try:
            conn = connection()
            conn.execute(_BEGIN)
            try:
                result = work(conn)
                conn.execute(_COMMIT)
            except BaseException:
                _rollback(conn)
                raise
            return result
        except sqlite3.Error as exc:
            raise _fault(name, what, exc) from exc
        finally:
            if held:
                turns.release()

    def execute(label: str, sql: str, params: tuple[object, ...]) -> None:
        write(lambda: f"{label}{params!r}", lambda conn: conn.execute(sql, params))

    def read(label: str, sql: str, params: tuple[object, ...]) -> list[Any]:
        tx = current.get()
        try:
            return (connection() if tx is None else tx.conn).execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _fault(name, lambda: f"{label}{params!r}", exc) from exc

    @contextmanager
    def outermost() -> Iterator[None]:
        held = take_turn("beginning a transaction")
        try:
            try:
                conn = connection()
                conn.execute(_BEGIN)
            except sqlite3.Error as exc:
                raise _fault(name, "beginning a transaction", exc) from exc
            tx = _Transaction(conn)
            token = current.set(tx)
            try:
                yield
            except BaseException:
                _rollback(conn)
                raise
            finally:
                current.reset(token)
            if tx.failed:
                _rollback(conn)
                raise StorageError(
                    f"SQLite database {name!r}: transaction rolled back after a failed write"
                    " inside it"
                )
            try:
                conn.execute(_COMMIT)
            except sqlite3.Error as exc:
                _rollback(conn)
                raise _fault(name, "commit", exc) from exc
        finally:
            if held:
                turns.release()

    @contextmanager
    def savepoint_in(tx: _Transaction) -> Iterator[None]:
        tx.savepoints += 1
        mark, failed = f"esfn_{tx.savepoints}", tx.failed
        with _faults(name, "taking a savepoint"):
            tx.conn.execute(f"SAVEPOINT {mark}")
        try:
            yield
        except BaseException:
            try:
                tx.conn.execute(f"ROLLBACK TO {mark}")
                tx.conn.execute(f"RELEASE {mark}")
                tx.failed = failed  # whatever failed inside is undone with the savepoint
            except sqlite3.Error:
                tx.failed = True
            raise
        try:
            with _faults(name, "releasing a savepoint"):
                tx.conn.execute(f"RELEASE {mark}")
        except StorageError:
            tx.failed = True
            raise

    transaction, savepoint = transactions(current, outermost, savepoint_in)

    @contextmanager
    def sql_connection() -> Iterator[sqlite3.Connection]:
        tx = current.get()
        with _faults(name, "connecting"):
            conn = connection() if tx is None else tx.conn
        yield conn

    def read_checkpoints(names: Sequence[str]) -> dict[str, Checkpoint]:
        # No lock to take: BEGIN IMMEDIATE already serialises every writer of the file.
        found: dict[str, Checkpoint] = {}
        for chunk in _chunks(sorted(names)):
            marks = ",".join("?" * len(chunk))
            query = f"{_READ_CHECKPOINT_IN} ({marks})"
            found.update((r[0], Checkpoint(*r)) for r in read("read_checkpoints", query, chunk))
        return found

    def write_checkpoints(checkpoints: Sequence[Checkpoint]) -> None:
        rows = [(c.name, c.position, c.state) for c in checkpoints]
        write(
            lambda: f"write_checkpoints{[c.name for c in checkpoints]!r}",
            lambda conn: conn.executemany(_WRITE_CHECKPOINT, rows),
        )

    def get_documents(projection: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(keys):
            query = f"{_GET_DOCUMENTS_IN} ({','.join('?' * len(chunk))})"
            found.update(read("get_documents", query, (projection, *chunk)))
        return found

    def put_documents(projection: str, items: Sequence[tuple[str, str | None]]) -> None:
        puts = [(projection, key, data) for key, data in items if data is not None]
        drops = [(projection, key) for key, data in items if data is None]

        def work(conn: sqlite3.Connection) -> None:
            if puts:
                conn.executemany(_PUT_DOCUMENT, puts)
            if drops:
                conn.executemany(_DELETE_DOCUMENT, drops)

        write(lambda: f"put_documents({projection!r}, {len(items)} documents)", work)

    def append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        return write(
            lambda: "append to " + ", ".join(f"{b.stream_type}/{b.stream_id!r}" for b in batches),
            lambda conn: _append(conn, batches),
        )

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        refuse_negative("read_stream", after=after, up_to=up_to)
        if up_to is None:
            return _events(read("read_stream", _READ_STREAM, (stream_type, stream_id, after)))
        params = (stream_type, stream_id, after, up_to)
        return _events(read("read_stream", _READ_STREAM_UP_TO, params))

    def read_payloads(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[Payload]:
        refuse_negative("read_stream", after=after, up_to=up_to)
        if up_to is None:
            return read("read_stream", _READ_PAYLOADS, (stream_type, stream_id, after))
        params = (stream_type, stream_id, after, up_to)
        return read("read_stream", _READ_PAYLOADS_UP_TO, params)

    def read_all(after: int, limit: int) -> Sequence[StoredEvent]:
        refuse_negative("read_all", after=after, limit=limit)
        return _events(read("read_all", _READ_ALL, (after, limit)))

    def read_committed(after: int, limit: int) -> Sequence[StoredEvent]:
        refuse_negative("read_committed", after=after, limit=limit)
        # Writers serialise: commit order is position order, so every committed row is final.
        return _events(read("read_committed", _READ_ALL, (after, limit)))

    def lease(name: str, owner: str, seconds: float) -> bool:
        now = time.time()
        params = (name, owner, now + seconds, now)
        return bool(
            write(
                lambda: f"taking lease {name!r} for {owner!r}",
                lambda conn: conn.execute(_LEASE, params).fetchall(),
            )
        )

    def release(name: str, owner: str) -> None:
        execute("release", _RELEASE, (name, owner))

    def count_after(position: int) -> int:
        refuse_negative("count_after", position=position)
        return int(read("count_after", _COUNT_AFTER, (position,))[0][0])

    def wait_for_events(timeout: float) -> bool:
        # data_version changes when another connection commits to the file: a cheap look.
        with _faults(name, "waiting for events"):
            conn = connection()
            start = conn.execute("PRAGMA data_version").fetchone()[0]
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(_WAKE_EVERY, left))
                if conn.execute("PRAGMA data_version").fetchone()[0] != start:
                    return True
        return False

    def last_position() -> int:
        rows = read("last_position", _LAST_POSITION, ())
        return int(rows[0][0])

    def read_snapshot(stream_type: str, stream_id: str, up_to: int | None) -> StoredSnapshot | None:
        refuse_negative("read_snapshot", up_to=up_to)
        if up_to is None:
            rows = read("read_snapshot", _READ_SNAPSHOT, (stream_type, stream_id))
        else:
            rows = read("read_snapshot", _READ_SNAPSHOT_UP_TO, (stream_type, stream_id, up_to))
        return StoredSnapshot(*rows[0]) if rows else None

    def write_snapshot(snapshot: StoredSnapshot) -> None:
        s = snapshot
        params = (s.stream_type, s.stream_id, s.version, s.snapshot_version, s.data)
        execute("write_snapshot", _WRITE_SNAPSHOT, params)

    def read_checkpoint(name: str) -> Checkpoint | None:
        rows = read("read_checkpoint", _READ_CHECKPOINT, (name,))
        return Checkpoint(*rows[0]) if rows else None

    def write_checkpoint(checkpoint: Checkpoint) -> None:
        c = checkpoint
        execute("write_checkpoint", _WRITE_CHECKPOINT, (c.name, c.position, c.state))

    def get_document(projection: str, key: str) -> str | None:
        rows = read("get_document", _GET_DOCUMENT, (projection, key))
        return rows[0][0] if rows else None

    def put_document(projection: str, key: str, data: str | None) -> None:
        if data is None:
            execute("put_document", _DELETE_DOCUMENT, (projection, key))
        else:
            execute("put_document", _PUT_DOCUMENT, (projection, key, data))

    def all_documents(projection: str) -> Sequence[tuple[str, str]]:
        return read("all_documents", _ALL_DOCUMENTS, (projection,))

    def clear_documents(projection: str) -> None:
        execute("clear_documents", _CLEAR_DOCUMENTS, (projection,))

    def lock_stream(stream_type: str, stream_id: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already serialises every writer of the file."""

    def close() -> None:
        nonlocal closed
        with guard:
            closed = True
            for conn in list(opened):
                if conn.fork == _forks[0]:
                    conn.close()
            opened.clear()

    try:
        with _faults(name, "opening"):
            _ensure_schema(connection())
    except StorageError:
        close()
        raise
    return Storage(
        name="sqlite",
        append=append,
        read_stream=StreamReader(read_stream, read_payloads),
        read_all=read_all,
        read_committed=read_committed,
        last_position=last_position,
        count_after=count_after,
        wait_for_events=wait_for_events,
        lock_stream=lock_stream,
        read_snapshot=read_snapshot,
        write_snapshot=write_snapshot,
        read_checkpoint=read_checkpoint,
        write_checkpoint=write_checkpoint,
        read_checkpoints=read_checkpoints,
        write_checkpoints=write_checkpoints,
        get_document=get_document,
        put_document=put_document,
        get_documents=get_documents,
        put_documents=put_documents,
        all_documents=all_documents,
        clear_documents=clear_documents,
        lease=lease,
        release=release,
        transaction=transaction,
        savepoint=savepoint,
        connection=sql_connection,
        close=close,
    )


@contextmanager
def _faults(name: str, what: str | Callable[[], str]) -> Iterator[None]:
    """Turn a `sqlite3` error in the block into ours, naming the file and `what` failed.

    `TransientStorageError` when the file stayed locked by another writer past the busy
    timeout; `StorageDataError` when the file is damaged or not a database; else `StorageError`.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise _fault(name, what, exc) from exc


def _fault(name: str, what: str | Callable[[], str], exc: sqlite3.Error) -> StorageError:
    doing = what if isinstance(what, str) else what()
    return _kind(exc)(f"SQLite database {name!r}: {doing} failed: {exc}")


def _kind(exc: sqlite3.Error) -> type[StorageError]:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes keep the primary low
    if primary in _BUSY_CODES:
        return TransientStorageError
    if primary in _DAMAGED_CODES:
        return StorageDataError
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return TransientStorageError
    return StorageError


def _chunks(items: Sequence[str]) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(items), _CHUNK):
        yield tuple(items[start : start + _CHUNK])


def _file_path(name: str) -> str:
    """`name` made absolute, so a later `chdir` cannot move the store; raises if it never fits."""
    if name in ("", ":memory:"):
        raise ValueError(
            f"sqlite_storage({name!r}): that database is private to one connection, but the"
            " store opens one per thread; use memory_storage() for a store in memory"
        )
    if name[:5].lower() == "file:":
        raise ValueError(
            f"sqlite_storage({name!r}): takes a file path, not a URI (the store needs the file"
            f" read-write, in WAL mode, shared); for a file of that name pass"
            f" {os.path.abspath(name)!r}"
        )
    if "\0" in name:
        raise ValueError(f"sqlite_storage({name!r}): a path cannot hold a NUL character")
    file = os.path.abspath(name)
    if os.path.isdir(file):
        raise StorageError(f"SQLite database {name!r}: is a directory, not a database file")
    folder = os.path.dirname(file)
    if not os.path.isdir(folder):
        raise StorageError(f"SQLite database {name!r}: {folder!r} is not an existing directory")
    return file


def _open(path: str) -> _Connection:
    """A new connection in autocommit mode (we issue BEGIN/COMMIT), WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(
        path,
        timeout=_BUSY_TIMEOUT,
        isolation_level=None,
        check_same_thread=False,  # used by one thread at a time; `close()` may run on another
        factory=_Connection,
    )
    conn.fork = _forks[0]
    try:
        _use_wal(conn)
        # Under WAL, NORMAL makes a commit durable against a process crash and keeps the database
        # consistent on power loss (the last commits may roll back): what most apps mean by
        # "durable", at a fraction of FULL's fsync cost per commit.
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (persistent, so usually already done), retrying while locked."""
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            # Switching needs an exclusive lock and SQLite does not wait for it through the busy
            # handler: processes opening a new file at once collide here, so wait and re-check.
            busy = getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode != "wal":
            # A switch SQLite can never make (no shared memory or no locking for the file) is
            # answered with the mode kept, not an error: asking again would never end.
            raise sqlite3.OperationalError(
                f"the file stays in journal mode {mode!r}: WAL, which lets threads and processes"
                " read while one writes, is not available for it"
            )
        return


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Under the write lock (so concurrent openers agree): create missing tables, test writing."""
    conn.execute(_BEGIN)
    try:
        if conn.execute(_COUNT_TABLES).fetchone()[0] != len(TABLES):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        # SQLite opens a file it may only read without complaint and refuses just the first
        # write: a write of nothing finds that out now rather than in the first append.
        conn.execute(_WRITE_NOTHING)
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise
    # Touch the last page of each table and of the stream index: cheap, and it catches a file
    # truncated after its header instead of failing later in the middle of a read.
    conn.execute(_LAST_POSITION).fetchone()
    conn.execute("SELECT max(stream_type) FROM events").fetchone()
    for table in TABLES[1:]:
        conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()  # constant table names


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back (e.g. after an I/O error): nothing to undo then.
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _append(conn: sqlite3.Connection, batches: Sequence[StreamAppend]) -> list[StoredEvent]:
    """Check every expected version first, then insert all rows: a conflict writes nothing."""
    log_end: list[int] = []

    def stream_end(stream_type: str, stream_id: str) -> int:
        if log_end:
            return int(conn.execute(_STREAM_END, (stream_type, stream_id)).fetchone()[0])
        end, last = conn.execute(_STREAM_AND_LOG_END, (stream_type, stream_id)).fetchone()
        log_end.append(last)
        return int(end)

    starts = stream_starts(batches, stream_end)
    # Writers hold the write lock from BEGIN IMMEDIATE to COMMIT, so positions taken here are
    # committed in position order: a reader never sees position p before p - 1 commits.
    position = log_end[0] if log_end else 0
    rows: list[StoredEvent] = []
    params: list[object] = []  # every row's, one after the other
    at, text = None, ""
    for batch, start in zip(batches, starts, strict=True):
        st, sid = batch.stream_type, batch.stream_id
        for version, e in enumerate(batch.events, start + 1):
            position += 1
            if e.recorded_at is not at:  # a command's events share one timestamp: format it once
                at = e.recorded_at
                text = _utc(at).isoformat(timespec="microseconds")
            row = as_stored((st, sid, version, position, *e))
            rows.append(row)
            # The row's own values in column order, but for the id and time as text.
            params += row
            params[-6] = str(e.event_id)
            params[-5] = text
    # Many rows to one INSERT: one statement to run rather than one per row.
    size = 13 * _ROWS_PER_INSERT
    for start in range(0, len(params), size):
        chunk = params[start : start + size]
        conn.execute(_insert_events(len(chunk) // 13), chunk)
    return rows


@functools.cache
def _insert_events(rows: int) -> str:
    return _INSERT_EVENTS + ", ".join([_EVENT_VALUES] * rows)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is UTC:
        return at
    if at.utcoffset() is None:
        raise ValueError(f"recorded_at must be an aware datetime, got {at!r}")
    return at.astimezone(UTC)


_fromiso = datetime.fromisoformat


def _events(rows: list[Any]) -> list[StoredEvent]:
    """Rows in `_EVENT_COLUMNS` order as `StoredEvent`s (the hot read path: no per-row calls)."""
    try:
        return [
            as_stored((st, sid, v, p, t, sv, d, UUID(eid), _fromiso(at), a, c, ca, m))
            for st, sid, v, p, t, sv, d, eid, at, a, c, ca, m in rows
        ]
    except (TypeError, ValueError, AttributeError):
        for row in rows:
            _check_row(row)
        raise


def _check_row(row: Any) -> None:
    """`StorageDataError` naming the row when its event id or timestamp cannot be read."""
    st, sid, v, p, _, _, _, eid, at, *_ = row
    try:
        UUID(eid)
        _fromiso(at)
    except (TypeError, ValueError, AttributeError) as exc:
        raise StorageDataError(
            f"corrupt event row: stream {st}/{sid!r} version {v} at position {p}:"
            f" {type(exc).__name__}: {exc}"
        ) from exc
