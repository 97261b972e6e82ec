"""PostgreSQL storage (psycopg 3): one schema, a connection pool, gap-safe global positions.

A row's position is `xid * 2**20 + n`: the top-level id of the transaction that appended it and
its ordinal within that transaction. `read_all` only returns positions below `B * 2**20`, where
every other transaction with an xid below B has ended (B is the snapshot's xmin for a reader
without an xid), so a tailing reader never skips a row that commits later. An append never puts
a stream's next version below its last one: it refuses when that row's xid is larger than its own
(docs/postgres.md has the proofs and the caveats).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC
from itertools import chain
from operator import attrgetter
from typing import Any

from .._errors import StorageError, TransientStorageError
from ._record import (
    Checkpoint,
    NewEvent,
    OrderConflict,
    Savepoint,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    Transaction,
)
from ._shared import (
    Payload,
    StreamReader,
    as_stored,
    check_expected,
    refuse_negative,
    stored,
    transactions,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.pq import ExecStatus
    from psycopg_pool import ConnectionPool

    from ._pg_pool import Connections, Lease, open_pool
except ImportError as exc:  # without the `postgres` extra the backend says so when asked for
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

_K1 = 1163085361  # "ESF1": the first key of the schema's appender lock; hashtext(schema) the second
_SHIFT = 1 << 20  # events one transaction may append, plus one
_RACE_RETRIES = 100  # appends at ANY version that lose the race for the stream's end
_NAME_BYTES = 63  # PostgreSQL cuts longer identifiers short (NAMEDATALEN - 1)
_MAX = (1 << 63) - 1  # "no upper bound" for version ranges, so one statement serves both
# Compact, and strict: a value JSON cannot hold is a TypeError, never its str().
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_TEXT_NAMES = ("type", "data", "actor_id", "correlation_id", "causation_id", "metadata")
_TEXTS = attrgetter(*_TEXT_NAMES)

_DDL = """\
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {events} (
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    position bigint NOT NULL,
    type text NOT NULL,
    schema_version integer NOT NULL,
    data json NOT NULL,
    event_id uuid NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor_id text,
    correlation_id text,
    causation_id text,
    metadata json NOT NULL,
    PRIMARY KEY (stream_type, stream_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_position ON {events} (position);
CREATE TABLE IF NOT EXISTS {snapshots} (
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    snapshot_version integer NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (stream_type, stream_id, version)
);
CREATE TABLE IF NOT EXISTS {checkpoints} (
    name text PRIMARY KEY,
    position bigint NOT NULL,
    state text
);
CREATE TABLE IF NOT EXISTS {documents} (
    projection text NOT NULL,
    key text COLLATE "C" NOT NULL,
    data json NOT NULL,
    PRIMARY KEY (projection, key)
);
CREATE TABLE IF NOT EXISTS {leases} (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires timestamptz NOT NULL
);
"""
# Earlier versions notified from a trigger on the events table. A NOTIFY in a transaction makes
# its commit take a lock every such commit in the database queues on, held through the commit's
# flush to disk: concurrent writers then commit one at a time. The store now notifies after
# commit, from a transaction of its own that writes nothing.
_DROP_TRIGGER = """\
DROP TRIGGER IF EXISTS events_appended ON {events};
DROP FUNCTION IF EXISTS {notify_appended}();
"""
_RELATIONS = ("events", "events_position", "snapshots", "checkpoints", "documents", "leases")
_ROUTINES = ("notify_appended",)
_TRIGGER = "events_appended"

# Columns in `StoredEvent` field order, so a row maps onto the constructor positionally; the
# casts hand JSON back as the stored text (psycopg would parse json columns otherwise).
_COLUMNS = (
    "stream_type, stream_id, version, position, type, schema_version, data::text, event_id,"
    " recorded_at, actor_id, correlation_id, causation_id, metadata::text"
)
_QUERIES = {
    "insert": (
        "INSERT INTO {events} (stream_type, stream_id, version, position, type, schema_version,"
        " data, event_id, recorded_at, actor_id, correlation_id, causation_id, metadata)"
        " SELECT s.stream_type, s.stream_id, coalesce(h.version, 0) + e.off,"
        " pg_current_xact_id()::text::bigint * %(shift)b + e.n, e.type, e.schema_version,"
        " e.data::json, e.event_id, e.recorded_at, e.actor_id, e.correlation_id, e.causation_id,"
        " e.metadata::json"
        # The streams and their events come as two JSON arrays of objects: one text parameter
        # each, which the driver sends as it is (arrays of each column cost far more to build).
        " FROM json_to_recordset(%(streams)b::json)"
        " AS s(i int8, stream_type text, stream_id text, expected int8)"
        " LEFT JOIN LATERAL (SELECT x.version, x.position FROM {events} x"
        " WHERE x.stream_type = s.stream_type AND x.stream_id = s.stream_id"
        " ORDER BY x.version DESC LIMIT 1) h ON true"
        " JOIN json_to_recordset(%(events)b::json)"
        " AS e(stream int8, off int8, n int8, type text, schema_version int4, data text,"
        " event_id uuid, recorded_at timestamptz, actor_id text, correlation_id text,"
        " causation_id text, metadata text) ON e.stream = s.i"
        # A stale expected version, a race lost at ANY, or a stream whose last row belongs to
        # a transaction with a larger xid (its position is above all of ours: readers would
        # see our later versions before it) inserts fewer rows than asked (the caller undoes
        # them) instead of raising, so an outer transaction stays usable.
        " WHERE (s.expected IS NULL OR s.expected = coalesce(h.version, 0))"
        " AND (h.position IS NULL"
        " OR h.position < (pg_current_xact_id()::text::bigint + 1) * %(shift)b)"
        " ON CONFLICT (stream_type, stream_id, version) DO NOTHING"
        " RETURNING position, version"
    ),
    "undo": "DELETE FROM {events} WHERE position = ANY(%s::int8[])",
    # A stream's version, and whether its last row comes after every position this transaction
    # can give (null when it has no xid yet: a new one is larger than any committed).
    "head": (
        "SELECT coalesce(h.version, 0),"
        " h.position >= (pg_current_xact_id_if_assigned()::text::bigint + 1) * %s"
        " FROM (VALUES (1)) AS one LEFT JOIN (SELECT version, position FROM {events}"
        " WHERE stream_type = %s AND stream_id = %s ORDER BY version DESC LIMIT 1) AS h ON true"
    ),
    "stream": (
        f"SELECT {_COLUMNS} FROM {{events}} WHERE stream_type = %s AND stream_id = %s"
        f" AND version > %s AND version <= coalesce(%s::int8, {_MAX}) ORDER BY version"
    ),
    # What folding a stream needs of each row, in `Payload` order.
    "payloads": (
        "SELECT version, type, schema_version, data::text FROM {events}"
        " WHERE stream_type = %s AND stream_id = %s"
        f" AND version > %s AND version <= coalesce(%s::int8, {_MAX}) ORDER BY version"
    ),
    # The bound is one InitPlan under the statement's own snapshot: every *other* transaction
    # with a smaller xid has ended, so rows below it are final (docs/postgres.md). Without an
    # xid of our own that is snapshot xmin; with one, xmin would hide our own rows, so take the
    # oldest other running xid, or xmax (xids from xmax on are unknown, bar our own).
    # Rows below the bound are final (docs/postgres.md): every transaction with a smaller xid
    # that could still commit events here has ended. A transaction running at the statement's
    # snapshot holds the bound back unless one scan of pg_locks, made after the snapshot, proves
    # it no appender of this schema: still running (its xid lock is there) and without the
    # schema's appender lock, which every write transaction of the store takes at BEGIN, before
    # it has an xid. An xid whose lock is gone may have committed events this snapshot cannot
    # see, so it holds the bound. Our own xid is ours to read past.
    "all": (
        "WITH locks AS MATERIALIZED (SELECT locktype, transactionid::text::bigint AS xid,"
        " pid, classid, objid, objsubid, database FROM pg_locks"
        " WHERE granted AND locktype IN ('transactionid', 'advisory')),"
        " appenders AS (SELECT pid FROM locks WHERE locktype = 'advisory'"
        f" AND classid = {_K1} AND objid = hashtext(%s)::oid AND objsubid = 2"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())),"
        " b AS (SELECT pg_snapshot_xmax(s)::text::bigint AS xmax,"
        " pg_current_xact_id_if_assigned()::text::bigint AS own,"
        " (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x WHERE NOT EXISTS ("
        "SELECT 1 FROM locks WHERE locktype = 'transactionid'"
        " AND locks.xid = x::text::bigint %% 4294967296"
        " AND locks.pid NOT IN (SELECT pid FROM appenders))) AS oldest"
        " FROM pg_current_snapshot() AS s)"
        f" SELECT {_COLUMNS} FROM {{events}} WHERE position > %s AND position < ("
        "SELECT least(oldest, CASE WHEN own = xmax THEN own + 1 ELSE xmax END) * %s FROM b)"
        " ORDER BY position LIMIT %s"
    ),
    "snapshot": (
        "SELECT stream_type, stream_id, version, snapshot_version, data FROM {snapshots}"
        f" WHERE stream_type = %s AND stream_id = %s AND version <= coalesce(%s::int8, {_MAX})"
        " ORDER BY version DESC LIMIT 1"
    ),
    "put_snapshot": (
        "INSERT INTO {snapshots} (stream_type, stream_id, version, snapshot_version, data)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream_type, stream_id, version)"
        " DO UPDATE SET snapshot_version = excluded.snapshot_version, data = excluded.data"
    ),
    "checkpoint": "SELECT name, position, state FROM {checkpoints} WHERE name = %s",
    "put_checkpoint": (
        "INSERT INTO {checkpoints} (name, position, state) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state"
    ),
    "document": "SELECT data::text FROM {documents} WHERE projection = %s AND key = %s",
    "put_document": (
        "INSERT INTO {documents} (projection, key, data) VALUES (%s, %s, %s)"
        " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
    ),
    "drop_document": "DELETE FROM {documents} WHERE projection = %s AND key = %s",
    "documents": "SELECT key, data::text FROM {documents} WHERE projection = %s ORDER BY key",
    "clear_documents": "DELETE FROM {documents} WHERE projection = %s",
    "lock": "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
    # Locks in the order given (sorted by the caller), so two holders never deadlock.
    "lock_many": (
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, i)"
    ),
    "last_position": "SELECT coalesce(max(position), 0) FROM {events}",
    "count_after": "SELECT count(*) FROM {events} WHERE position > %s",
    # The server's clock decides, so workers on machines whose clocks differ agree.
    "lease": (
        "INSERT INTO {leases} (name, owner, expires)"
        " VALUES (%s, %s, clock_timestamp() + %s * interval '1 second')"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
        " WHERE {leases}.owner = excluded.owner OR {leases}.expires < clock_timestamp()"
        " RETURNING owner"
    ),
    "release": "DELETE FROM {leases} WHERE name = %s AND owner = %s",
    "committed": (
        f"SELECT {_COLUMNS} FROM {{events}} WHERE position > %s ORDER BY position LIMIT %s"
    ),
    "checkpoints": "SELECT name, position, state FROM {checkpoints} WHERE name = ANY(%s::text[])",
    "put_checkpoints": (
        "INSERT INTO {checkpoints} (name, position, state)"
        " SELECT * FROM unnest(%s::text[], %s::int8[], %s::text[])"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state"
    ),
    "get_documents": (
        "SELECT key, data::text FROM {documents} WHERE projection = %s AND key = ANY(%s::text[])"
    ),
    "put_documents": (
        "INSERT INTO {documents} (projection, key, data)"
        " SELECT %s, k, d::json FROM unnest(%s::text[], %s::text[]) AS t(k, d)"
        " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
    ),
    "drop_documents": "DELETE FROM {documents} WHERE projection = %s AND key = ANY(%s::text[])",
}
_BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED"
# Right after BEGIN, in one statement (set_config(..., true) is SET LOCAL): generic plans, as a
# custom plan of the INSERT costs more to make than to run and the planner never switches by
# itself (it guesses 100 rows per JSON array in a generic plan); the store's search path; and
# the appender lock, held shared from BEGIN on by every write transaction: by it readers tell
# which running transactions may append to this schema.
_SETUP = (
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true),"
    " set_config('search_path', {path}, true),"
    " pg_advisory_xact_lock_shared({k1}, hashtext({schema}))"
)


def postgres_schema(schema: str = "eventsourcing") -> str:
    """The DDL (idempotent) that creates the storage's tables in `schema`."""
    _check_schema("postgres_schema", schema)
    _require_psycopg()
    return _compose(_DDL + _DROP_TRIGGER, schema, placeholders=False)


def postgres_storage(
    conninfo_or_pool: str | ConnectionPool[Any],
    *,
    schema: str = "eventsourcing",
    lock_streams: bool = False,
) -> Storage:
    """A storage in PostgreSQL `schema`, created on first use; a pool passed in stays open.

    `lock_streams=True` makes `lock_stream` take a transaction-scoped advisory lock per stream.
    """
    _check_schema("postgres_storage", schema)
    _require_psycopg()
    if isinstance(conninfo_or_pool, str):
        with _faults(schema, "connect"), psycopg.connect(conninfo_or_pool) as conn:
            _create_schema(conn, schema)  # directly, so a bad URL fails now with its reason
        conns = Connections(open_pool(conninfo_or_pool, f"eventsourcing_fn[{schema}]"), own=True)
    else:
        with _faults(schema, "connect"), conninfo_or_pool.connection() as conn:
            _create_schema(conn, schema)
        conns = Connections(conninfo_or_pool, own=False)
    return _Postgres(conns, schema, lock_streams).storage()


class UnstorableText(StorageError, ValueError):
    """Text that PostgreSQL cannot store: it holds a NUL character. Nothing was written."""


def _check_schema(function: str, schema: object) -> None:
    """Refuse, before connecting, a schema name PostgreSQL would reject, cut short or share."""
    if not isinstance(schema, str):
        raise TypeError(f"{function}(schema={schema!r}): a schema name is a str")
    problem = None
    if not schema:
        problem = "a schema name is not empty"
    elif "\0" in schema:
        problem = "a schema name cannot hold a NUL character"
    elif schema.lower() == "information_schema" or schema.lower().startswith("pg_"):
        problem = "PostgreSQL reserves this name (and every name starting with pg_) for itself"
    else:
        try:
            size = len(schema.encode())
        except UnicodeEncodeError:
            problem = "a schema name must be valid UTF-8 (it holds a lone surrogate)"
        else:
            if size > _NAME_BYTES:
                problem = (
                    f"{size} bytes in UTF-8; PostgreSQL cuts names to {_NAME_BYTES}, so two"
                    " storages whose schema names begin alike would share tables"
                )
    if problem:
        raise ValueError(f"{function}(schema={schema!r}): {problem}")


def _require_psycopg() -> None:
    if _MISSING is not None:
        raise ImportError(
            "the PostgreSQL backend needs psycopg 3 and psycopg_pool: "
            "pip install 'eventsourcing_fn[postgres]'"
        ) from _MISSING


def _compose(template: str, schema: str, *, placeholders: bool = True) -> str:
    """`template` with its {names} as quoted identifiers of `schema`.

    With `placeholders`, a `%` in the schema name is doubled: the statement is then parsed for
    %s placeholders, and `"a%s"."events"` must stay a name.
    """

    def name(*parts: str) -> sql.SQL:
        text = sql.Identifier(*parts).as_string(None)
        return sql.SQL(text.replace("%", "%%") if placeholders else text)

    names = {relation: name(schema, relation) for relation in _RELATIONS + _ROUTINES}
    return sql.SQL(template).format(schema=name(schema), **names).as_string(None)


def _create_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Run the DDL unless every relation exists; racing creators queue on an advisory lock.

    A schema made by an earlier version loses its notifying trigger, when we may drop it.
    """
    row = conn.execute(
        "SELECT count(*), (SELECT count(*) FROM pg_trigger t JOIN pg_class e ON e.oid = t.tgrelid"
        " JOIN pg_namespace n ON n.oid = e.relnamespace"
        " WHERE n.nspname = %s AND e.relname = 'events' AND t.tgname = %s)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, _TRIGGER, schema, list(_RELATIONS)),
    ).fetchone()
    found, triggers = row if row is not None else (0, 0)
    if found == len(_RELATIONS) and not triggers:
        return  # nothing to create, so no CREATE privilege needed
    ddl = _DDL if found < len(_RELATIONS) else ""
    try:
        with conn.transaction():
            # IF NOT EXISTS alone still races (duplicate key in pg_namespace/pg_type).
            conn.execute(_QUERIES["lock"], (f"eventsourcing_fn ddl {schema}",))
            conn.execute(_compose(ddl + _DROP_TRIGGER, schema, placeholders=False).encode())
    except psycopg.errors.InsufficientPrivilege:
        if ddl:
            raise
        # Someone else owns the table: the trigger stays, and so do its (redundant) notifications.


@contextmanager
def _faults(schema: str, what: str) -> Iterator[None]:
    """Turn a psycopg error in the block into ours, naming the schema and what failed.

    `TransientStorageError` for the faults a retry may get past, all of them psycopg
    `OperationalError`s: a lost or refused connection, an exhausted pool (`PoolTimeout`), a
    serialization failure, a deadlock, a lock or statement timeout. Else `StorageError`.
    """
    try:
        yield
    except psycopg.Error as exc:
        kind = TransientStorageError if isinstance(exc, psycopg.OperationalError) else StorageError
        raise kind(f"postgres storage (schema {schema!r}): {what} failed: {exc}") from exc


class _Tx:
    """One open storage transaction: its connection, whether BEGIN was sent, events appended."""

    __slots__ = ("appended", "begun", "cur", "lease", "savepoints")

    def __init__(self, lease: Lease) -> None:
        self.use(lease)
        self.begun = False
        self.appended = 0
        self.savepoints = 0

    def use(self, lease: Lease) -> None:
        """Carry on over `lease`'s connection."""
        self.lease = lease
        # One cursor for the transaction's statements: `conn.execute` makes one per statement,
        # copying the connection's adapters each time.
        self.cur = lease.conn.cursor()


class _Listener:
    """One connection LISTENing for appends to a schema, opened at the first wait."""

    def __init__(self, conns: Connections, schema: str) -> None:
        self.conns = conns
        self.channel = "esfn_" + hashlib.md5(schema.encode()).hexdigest()[:20]
        self.conn: psycopg.Connection[Any] | None = None
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def wait(self, timeout: float) -> bool:
        """True when an append was notified within `timeout` seconds; False on a timeout, and
        also when the connection failed (it is made again at the next wait: polling goes on)."""
        with self.lock:
            try:
                conn = self._connection()
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            except psycopg.Error:
                self._drop()
                return False

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.pid != os.getpid():
            self.pid = os.getpid()
            conn = self.conns.connect()
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.conn = conn
        return self.conn

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        with self.lock:
            self._drop()


class _Postgres:
    """The callables of one storage; `storage()` returns them as the `Storage` record."""

    def __init__(self, conns: Connections, schema: str, lock_streams: bool) -> None:
        self.conns = conns
        self.schema = schema
        self.lock_streams = lock_streams
        self.current: ContextVar[_Tx | None] = ContextVar(f"postgres_tx_{schema}", default=None)
        self.q = {key: _compose(text, schema) for key, text in _QUERIES.items()}
        self.listener = _Listener(self.conns, schema)
        # Without parameters: the channel is a literal, so a % in it stays plain text.
        channel = sql.Literal(self.listener.channel).as_string(None)
        self.commit_and_notify = f"COMMIT; SELECT pg_notify({channel}, '')".encode()
        # SQL projections write the user's tables with unqualified names: they go to (and are
        # found first in) this store's schema, so two stores in two schemas stay apart.
        self.search_path = f"{sql.Identifier(schema).as_string(None)}, public"
        setup = _SETUP.format(
            path=sql.Literal(self.search_path).as_string(None),
            k1=_K1,
            schema=sql.Literal(schema).as_string(None),
        )
        # Run without parameters, so a % in the schema's name is plain text.
        self.begin = (_BEGIN, setup.encode())
        self.transaction: Transaction
        self.savepoint: Savepoint
        self.transaction, self.savepoint = transactions(
            self.current, self._outermost, self._savepoint_in
        )

    def storage(self) -> Storage:
        return Storage(
            name="postgres",
            append=self.append,
            read_stream=StreamReader(self.read_stream, self.read_payloads),
            read_all=self.read_all,
            read_committed=self.read_committed,
            last_position=self.last_position,
            count_after=self.count_after,
            wait_for_events=self.wait_for_events,
            lock_stream=self.lock_stream,
            read_snapshot=self.read_snapshot,
            write_snapshot=self.write_snapshot,
            read_checkpoint=self.read_checkpoint,
            write_checkpoint=self.write_checkpoint,
            read_checkpoints=self.read_checkpoints,
            write_checkpoints=self.write_checkpoints,
            get_document=self.get_document,
            put_document=self.put_document,
            get_documents=self.get_documents,
            put_documents=self.put_documents,
            all_documents=self.all_documents,
            clear_documents=self.clear_documents,
            lease=self.lease,
            release=self.release,
            transaction=self.transaction,
            savepoint=self.savepoint,
            connection=self.connection,
            close=self.close,
        )

    # -- connections and transactions ---------------------------------------------------------

    @contextmanager
    def _outermost(self) -> Iterator[None]:
        """One database transaction on a pooled connection, BEGIN sent at its first write."""
        with _faults(self.schema, "taking a connection from the pool"):
            tx = _Tx(self.conns.take())
        token = self.current.set(tx)
        try:
            try:
                yield
            finally:
                self.current.reset(token)
            if tx.begun:  # an exception skips this: giving the connection back rolls back
                with _faults(self.schema, "commit"):
                    self._commit(tx)
        finally:
            self.conns.give(tx.lease)

    def _commit(self, tx: _Tx) -> None:
        """Commit; after appends, notify listeners in the same round trip."""
        if not tx.appended:
            tx.cur.execute(b"COMMIT")
            return
        # The NOTIFY runs after COMMIT, in a transaction of its own: inside ours, the commit
        # would queue behind every other notifying commit of the database, flush included.
        # Without parameters the two statements go as one simple query (one round trip), and
        # the NOTIFY runs only if the COMMIT held; a full notification queue then fails the
        # NOTIFY alone, and listeners find the committed writes when they next poll.
        with suppress(psycopg.errors.ProgramLimitExceeded):
            tx.cur.execute(self.commit_and_notify)

    @contextmanager
    def _savepoint_in(self, tx: _Tx) -> Iterator[None]:
        """A savepoint inside `tx`, undone alone if the block raises."""
        tx.savepoints += 1
        mark = f"esfn_{tx.savepoints}"
        self._fetch("taking a savepoint", f"SAVEPOINT {mark}", None, write=True)
        try:
            yield
        except BaseException:
            self._fetch("undoing a savepoint", f"ROLLBACK TO SAVEPOINT {mark}", None, write=True)
            raise
        self._fetch("releasing a savepoint", f"RELEASE SAVEPOINT {mark}", None, write=True)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The current transaction's connection (BEGIN sent), else a pooled one for queries."""
        tx = self.current.get()
        if tx is None:
            with _faults(self.schema, "taking a connection from the pool"):
                lease = self.conns.take()
            try:
                with _faults(self.schema, "setting the search path"):
                    lease.conn.execute(f"SET search_path = {self.search_path}".encode())
                yield lease.conn
            finally:
                with suppress(psycopg.Error):  # a pooled connection goes back as it came
                    lease.conn.execute(b"RESET search_path")
                self.conns.give(lease)
            return
        if not tx.begun:  # the caller's writes must be part of the transaction
            self._fetch("beginning a transaction", "SELECT 1", None, write=True)
        yield tx.lease.conn

    def _fetch(self, what: str, query: str, params: Any, *, write: bool = False) -> list[Any]:
        """Run one statement, inside the current transaction if there is one; its rows."""
        tx = self.current.get()
        with _faults(self.schema, what):
            if tx is None:
                return self._alone(query, params, write)
            if tx.begun:
                return _rows(tx.cur.execute(query, params))
            try:
                return self._first(tx, query, params, write)
            except psycopg.OperationalError:
                if tx.begun or not tx.lease.conn.broken:
                    raise
            # The connection died before BEGIN: nothing of this transaction is on the server
            # (reads before BEGIN are statements of their own), so another one can carry it.
            self.conns.give(tx.lease)
            self.conns.heal()
            tx.use(self.conns.take())
            return self._first(tx, query, params, write)

    def _first(self, tx: _Tx, query: str, params: Any, write: bool) -> list[Any]:
        """A statement before the transaction's first write; a write sends BEGIN first."""
        conn, cur = tx.lease.conn, tx.cur
        if not write:
            return _rows(cur.execute(query, params))
        # BEGIN waits for the first write or lock: reads before it are READ COMMITTED
        # statements either way, and a read-only transaction costs no round trips. BEGIN and
        # the write travel in one pipeline: one round trip for both.
        try:
            with conn.pipeline():  # the last statement's result is the cursor's
                for statement in self.begin:
                    cur.execute(statement)
                cur.execute(query, params)
        except psycopg.Error:
            # Unless the connection died (the server then ends the transaction, and the caller
            # may carry on with another), the transaction is open on the server, if aborted.
            tx.begun = not conn.broken
            raise
        tx.begun = True
        return _rows(cur)

    def _alone(self, query: str, params: Any, write: bool) -> list[Any]:
        """One autocommit statement on a pooled connection."""
        with self.conns.borrow() as conn:
            try:
                return _rows(conn.execute(query, params))
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
                # It died while idle in the pool (server restart, terminated backend), and so
                # most likely did its idle peers: replace them, not only this one.
                self.conns.heal()
                if write:
                    raise  # it may have committed before the connection broke
        with self.conns.borrow() as conn:
            return _rows(conn.execute(query, params))

    def close(self) -> None:
        """Close the pool this storage opened; a pool passed in is left to its owner."""
        self.listener.close()
        self.conns.close()

    # -- events -------------------------------------------------------------------------------

    def append(self, batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        """Append every batch atomically; `VersionConflict` on a stale expected version.

        `OrderConflict` when a stream's last event was appended by a transaction that began
        after the current one (retried here in a new transaction when there is no current one).
        """
        _refuse_nul_in(batches)  # before anything is written, so nothing is half-written
        if self.current.get() is not None:
            return self._append(batches)
        attempts = 1
        while True:
            try:
                with self.transaction():
                    return self._append(batches)
            except OrderConflict:
                # A new transaction's xid is larger than that of every committed one.
                if attempts == _RACE_RETRIES:
                    raise
                attempts += 1

    def _append(self, batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        if len({(b.stream_type, b.stream_id) for b in batches}) < len(batches):
            # One stream twice: each batch must see the one before.
            return [row for batch in batches for row in self._append([batch])]
        tx = self.current.get()
        assert tx is not None
        for _ in range(_RACE_RETRIES):
            rows = self._insert(tx, batches)
            if rows is not None:
                return rows
        raise TransientStorageError(
            f"postgres storage (schema {self.schema!r}): append to {_streams(batches)} lost the"
            f" race for the stream's end {_RACE_RETRIES} times"
        )

    def _insert(self, tx: _Tx, batches: Sequence[StreamAppend]) -> list[StoredEvent] | None:
        """One INSERT for every batch: the rows, None to retry, or a `VersionConflict`."""
        self._check_heads([b for b in batches if not b.events and b.expected_version is not None])
        events = [(b, e) for b in batches for e in b.events]
        if not events:
            return []
        first = tx.appended
        if first + len(events) >= _SHIFT:
            raise StorageError(
                f"postgres storage (schema {self.schema!r}): more than {_SHIFT - 1} events"
                f" in one transaction (append to {_streams(batches)})"
            )
        tx.appended += len(events)
        what = f"append to {_streams(batches)}"
        done = self._fetch(what, self.q["insert"], _insert_params(batches, first), write=True)
        if len(done) == len(events):
            return _stored(events, done, first)
        # Short: undo this statement's rows, then tell why; a race lost at ANY is retried.
        self._fetch(what, self.q["undo"], ([p for p, _ in done],), write=True)
        self._check_heads(batches)
        return None

    def _check_heads(self, batches: Sequence[StreamAppend]) -> None:
        """Raise `VersionConflict` for a stale expected version, else `OrderConflict`."""
        heads = []
        for b in batches:
            what = f"reading the version of {b.stream_type}/{b.stream_id!r}"
            ((head, later),) = self._fetch(
                what, self.q["head"], (_SHIFT, b.stream_type, b.stream_id)
            )
            check_expected(b, head)
            heads.append((b, head, later))
        for b, head, later in heads:
            # The stream's last row has a larger xid than ours, so its position is above all of
            # ours: retrying in this transaction cannot help, a new transaction can.
            if later and b.events:
                raise OrderConflict(b.stream_type, b.stream_id, b.expected_version, head)

    def read_stream(
        self, stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        """One stream's rows with `after < version <= up_to`, in version order."""
        refuse_negative("read_stream", after=after, up_to=up_to)
        what = f"reading stream {stream_type}/{stream_id!r}"
        return _events(self._fetch(what, self.q["stream"], (stream_type, stream_id, after, up_to)))

    def read_payloads(
        self, stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[Payload]:
        """`read_stream`'s rows as (version, type, schema_version, data)."""
        refuse_negative("read_stream", after=after, up_to=up_to)
        what = f"reading stream {stream_type}/{stream_id!r}"
        return self._fetch(what, self.q["payloads"], (stream_type, stream_id, after, up_to))

    def read_all(self, after: int, limit: int) -> Sequence[StoredEvent]:
        """Up to `limit` rows after position `after` that no running writer can precede."""
        refuse_negative("read_all", after=after, limit=limit)
        what = f"reading the log after position {after}"
        params = (self.schema, after, _SHIFT, limit)
        return _events(self._fetch(what, self.q["all"], params))

    def lock_stream(self, stream_type: str, stream_id: str) -> None:
        """With `lock_streams`, hold an advisory lock on the stream until the transaction ends."""
        if self.lock_streams:
            what = f"locking stream {stream_type}/{stream_id!r}"
            key = f"{self.schema}\n{len(stream_type)}:{stream_type}\n{stream_id}"
            self._fetch(what, self.q["lock"], (key,), write=True)

    # -- snapshots, checkpoints, documents ----------------------------------------------------

    def read_snapshot(
        self, stream_type: str, stream_id: str, up_to: int | None
    ) -> StoredSnapshot | None:
        """The newest snapshot of a stream at or below version `up_to`."""
        refuse_negative("read_snapshot", up_to=up_to)
        what = f"reading a snapshot of {stream_type}/{stream_id!r}"
        rows = self._fetch(what, self.q["snapshot"], (stream_type, stream_id, up_to))
        return StoredSnapshot(*rows[0]) if rows else None

    def write_snapshot(self, snapshot: StoredSnapshot) -> None:
        """Keep a snapshot (replacing one of the same stream and version)."""
        s = snapshot
        what = f"writing a snapshot of {s.stream_type}/{s.stream_id!r}"
        _refuse_nul(what, stream_type=s.stream_type, stream_id=s.stream_id, data=s.data)
        params = (s.stream_type, s.stream_id, s.version, s.snapshot_version, s.data)
        self._fetch(what, self.q["put_snapshot"], params, write=True)

    def read_checkpoint(self, name: str) -> Checkpoint | None:
        """A component's checkpoint; inside a transaction, held until it ends."""
        what = f"reading checkpoint {name!r}"
        if self.current.get() is not None:
            # Serialise transactions that fold the same component, as a memory transaction
            # does: otherwise two writers would each update the view they read and one be lost.
            key = f"{self.schema}\ncheckpoint\n{name}"
            self._fetch(what, self.q["lock"], (key,), write=True)
        rows = self._fetch(what, self.q["checkpoint"], (name,))
        return Checkpoint(*rows[0]) if rows else None

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a component's checkpoint, replacing the previous one."""
        c = checkpoint
        what = f"writing checkpoint {c.name!r}"
        _refuse_nul(what, name=c.name, state=c.state)
        self._fetch(what, self.q["put_checkpoint"], (c.name, c.position, c.state), write=True)

    def read_committed(self, after: int, limit: int) -> Sequence[StoredEvent]:
        """Up to `limit` committed rows after `after`, without waiting for running writers."""
        refuse_negative("read_committed", after=after, limit=limit)
        what = f"reading committed events after position {after}"
        return _events(self._fetch(what, self.q["committed"], (after, limit)))

    def lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew a lease; inside a transaction, one that may not idle past the lease."""
        what = f"taking lease {name!r} for {owner!r}"
        if self.current.get() is not None:
            # A holder paused mid-transaction (SIGSTOP, a long GC) is cut off by the server once
            # its lease could have passed to another, and its locks with it.
            timeout = (
                f"SET LOCAL idle_in_transaction_session_timeout = {max(int(seconds * 1000), 1)}"
            )
            self._fetch(what, timeout, None, write=True)
        return bool(self._fetch(what, self.q["lease"], (name, owner, seconds), write=True))

    def release(self, name: str, owner: str) -> None:
        """Give a lease up if `owner` holds it."""
        self._fetch(f"releasing lease {name!r}", self.q["release"], (name, owner), write=True)

    def count_after(self, position: int) -> int:
        """How many committed events come after `position`."""
        refuse_negative("count_after", position=position)
        ((count,),) = self._fetch("counting events", self.q["count_after"], (position,))
        return int(count)

    def wait_for_events(self, timeout: float) -> bool:
        """Wait for a notification that events were appended to this schema, up to `timeout`."""
        return self.listener.wait(timeout)

    def last_position(self) -> int:
        """The highest committed position (no gap safety: see `read_all` for that)."""
        ((position,),) = self._fetch("reading the last position", self.q["last_position"], ())
        return int(position)

    def read_checkpoints(self, names: Sequence[str]) -> dict[str, Checkpoint]:
        """Checkpoints by name; inside a transaction, each held until it ends."""
        if not names:
            return {}
        wanted = sorted(set(names))
        what = f"reading checkpoints {wanted!r}"
        if self.current.get() is not None:
            # Locked in a statement of its own: the read after it must take its snapshot once
            # every lock is held, or it could miss what the previous holder committed.
            keys = [f"{self.schema}\ncheckpoint\n{name}" for name in wanted]
            self._fetch(what, self.q["lock_many"], (keys,), write=True)
        rows = self._fetch(what, self.q["checkpoints"], (wanted,))
        return {row[0]: Checkpoint(*row) for row in rows}

    def write_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Store many checkpoints in one statement, replacing earlier ones."""
        if not checkpoints:
            return
        what = f"writing checkpoints {[c.name for c in checkpoints]!r}"
        for c in checkpoints:
            _refuse_nul(what, name=c.name, state=c.state)
        params = (
            [c.name for c in checkpoints],
            [c.position for c in checkpoints],
            [c.state for c in checkpoints],
        )
        self._fetch(what, self.q["put_checkpoints"], params, write=True)

    def get_documents(self, projection: str, keys: Sequence[str]) -> dict[str, str]:
        """The JSON text of every existing document among `keys`, in one round trip."""
        if not keys:
            return {}
        what = f"reading {len(keys)} documents of {projection!r}"
        rows = self._fetch(what, self.q["get_documents"], (projection, list(keys)))
        return dict(rows)

    def put_documents(self, projection: str, items: Sequence[tuple[str, str | None]]) -> None:
        """Write and delete many documents: one statement for each."""
        what = f"writing {len(items)} documents of {projection!r}"
        puts = [(key, data) for key, data in items if data is not None]
        drops = [key for key, data in items if data is None]
        for key, data in puts:
            _refuse_nul(what, key=key, data=data)
        if puts:
            keys, datas = zip(*puts, strict=True)
            params = (projection, list(keys), list(datas))
            self._fetch(what, self.q["put_documents"], params, write=True)
        if drops:
            self._fetch(what, self.q["drop_documents"], (projection, drops), write=True)

    def get_document(self, projection: str, key: str) -> str | None:
        """One document's JSON text, or None."""
        what = f"reading document {projection}/{key!r}"
        rows = self._fetch(what, self.q["document"], (projection, key))
        return str(rows[0][0]) if rows else None

    def put_document(self, projection: str, key: str, data: str | None) -> None:
        """Store a document's JSON text; None deletes it."""
        what = f"writing document {projection}/{key!r}"
        _refuse_nul(what, projection=projection, key=key, data=data)
        if data is None:
            self._fetch(what, self.q["drop_document"], (projection, key), write=True)
        else:
            self._fetch(what, self.q["put_document"], (projection, key, data), write=True)

    def all_documents(self, projection: str) -> Sequence[tuple[str, str]]:
        """Every (key, JSON text) of a projection in key order."""
        rows = self._fetch(
            f"reading documents of {projection!r}", self.q["documents"], (projection,)
        )
        return [(key, data) for key, data in rows]

    def clear_documents(self, projection: str) -> None:
        """Delete every document of a projection."""
        what = f"clearing documents of {projection!r}"
        self._fetch(what, self.q["clear_documents"], (projection,), write=True)


def _refuse_nul_in(batches: Sequence[StreamAppend]) -> None:
    """`UnstorableText` for the first stream name or event text that holds a NUL character."""
    for b in batches:
        texts = chain((b.stream_type, b.stream_id), chain.from_iterable(map(_TEXTS, b.events)))
        if "\0" in "".join(filter(None, texts)):  # one scan in C for the usual case: none
            what = f"append to {b.stream_type}/{b.stream_id!r}"
            _refuse_nul(what, stream_type=b.stream_type, stream_id=b.stream_id)
            for i, e in enumerate(b.events, start=1):
                _refuse_nul(f"{what}, event {i}", **dict(zip(_TEXT_NAMES, _TEXTS(e), strict=True)))


def _refuse_nul(what: str, **texts: str | None) -> None:
    """`UnstorableText` naming the first of `texts` that holds a NUL character."""
    for field, text in texts.items():
        if text is not None and "\0" in text:
            raise UnstorableText(
                f"postgres storage: {what}: {field} holds a NUL character (\\x00), which"
                " PostgreSQL text cannot store; nothing was written"
            )


def _insert_params(batches: Sequence[StreamAppend], first: int) -> dict[str, object]:
    """The INSERT's parameters: its streams, and their events numbered from `first` + 1 in the
    order given (`n`), each with the stream it goes to (`stream`) and its place there (`off`)."""
    streams = []
    events = []
    n = first
    at, text = None, ""
    for i, b in enumerate(batches, start=1):
        streams.append(
            {"i": i, "stream_type": b.stream_type, "stream_id": b.stream_id,
             "expected": b.expected_version}
        )  # fmt: skip
        for off, e in enumerate(b.events, start=1):
            n += 1
            if e.recorded_at is not at:  # a command's events share one timestamp: format it once
                at, text = e.recorded_at, e.recorded_at.isoformat()
            t, sv, data, event_id, _, actor, correlation, causation, metadata = e
            # fmt: off
            events.append(_EVENT_JSON % (
                i, off, n, _quote(t), sv, _quote(data), event_id, text,
                _NULL if actor is None else _quote(actor),
                _NULL if correlation is None else _quote(correlation),
                _NULL if causation is None else _quote(causation),
                _quote(metadata),
            ))
            # fmt: on
    return {"shift": _SHIFT, "streams": _json(streams), "events": f"[{','.join(events)}]"}


# One event of the INSERT's JSON array, filled by formatting rather than encoding a dict: half
# the time. Ids and times are written as they print (neither holds a character to escape).
_EVENT_JSON = (
    '{"stream":%d,"off":%d,"n":%d,"type":%s,"schema_version":%d,"data":%s,"event_id":"%s",'
    '"recorded_at":"%s","actor_id":%s,"correlation_id":%s,"causation_id":%s,"metadata":%s}'
)
_NULL = "null"
_quote: Callable[[str], str] = json.encoder.encode_basestring  # as `_json` writes text


def _stored(
    events: list[tuple[StreamAppend, NewEvent]], done: list[Any], first: int
) -> list[StoredEvent]:
    """The inserted rows in input order; RETURNING order is not promised, `n` is."""
    out: list[StoredEvent | None] = [None] * len(events)
    for position, version in done:
        i = (position & (_SHIFT - 1)) - first - 1
        b, e = events[i]
        out[i] = stored(b, e, version, position)
    return out  # type: ignore[return-value]  # every slot is filled: len(done) == len(events)


def _rows(cur: psycopg.Cursor[Any]) -> list[Any]:
    # Not `cur.description`: that builds a Column object per column on every call.
    result = cur.pgresult
    return cur.fetchall() if result and result.status == ExecStatus.TUPLES_OK else []


def _events(rows: list[Any]) -> list[StoredEvent]:
    if rows and rows[0][8].tzinfo is not UTC:  # a pool passed in may use another time zone
        rows = [(*r[:8], r[8].astimezone(UTC), *r[9:]) for r in rows]
    return list(map(as_stored, rows))


def _streams(batches: Sequence[StreamAppend]) -> str:
    names = [f"{b.stream_type}/{b.stream_id!r}" for b in batches[:3]]
    more = f" and {len(batches) - 3} more" if len(batches) > 3 else ""
    return ", ".join(names) + more
