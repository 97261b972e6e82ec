"""A read-only reader of a PostgreSQL store: a session the server itself keeps from writing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .._errors import StorageError
from ..storage import Checkpoint, StoredEvent, StoredSnapshot
from ._errors import BadInput, one_line
from ._readonly import Reader, record, stream_infos, streams_query


def is_postgres_url(store: str) -> bool:
    """Whether `--store` names a PostgreSQL server rather than a file."""
    return store.startswith(("postgresql://", "postgres://"))


def postgres_where(url: str, schema: str) -> str:
    """The server, database and schema for messages, without the password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        server = f"{parts.scheme}://{user}{host}{port}{parts.path}"
    except ValueError:
        server = "the URL given"
    return f"PostgreSQL schema {schema!r} at {server}"


def postgres_reader(url: str, schema: str) -> Reader:
    """A reader of the store in `schema` at `url`, in a session that can only read."""
    where = postgres_where(url, schema)
    psycopg, queries, events = _psycopg(schema)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise BadInput(f"{where}: cannot connect: {one_line(exc)}") from exc
    except ValueError as exc:  # a URL libpq cannot even parse as one
        raise BadInput(f"{where}: not a valid PostgreSQL URL: {one_line(exc)}") from exc
    try:
        # Every statement after this runs in a read-only transaction of its own: the server
        # itself refuses a write, whatever the code asks for.
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET TIME ZONE 'UTC'")
        _check_postgres_store(conn, schema, where)
    except BaseException:
        conn.close()
        raise

    def read(label: str, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            rows: list[Any] = conn.execute(sql.encode(), tuple(params)).fetchall()
            return rows
        except psycopg.Error as exc:
            raise StorageError(f"{where}: {label} failed: {one_line(exc)}") from exc

    reads = _postgres_reads(read, events, queries, schema)

    @contextmanager
    def connection() -> Iterator[Any]:
        yield conn

    streams_sql, types_sql, checkpoints_sql = _postgres_listings(schema)
    return Reader(
        record("postgres (read-only)", {**reads, "connection": connection}, conn.close),
        where,
        lambda stream_type: stream_infos(
            read("listing streams", *streams_query(streams_sql, "%s", stream_type)),
            text_times=False,
        ),
        lambda: sorted(row[0] for row in read("listing stream types", types_sql)),
        lambda: sorted(
            (Checkpoint(*row) for row in read("listing checkpoints", checkpoints_sql)),
            key=lambda c: c.name,
        ),
    )


def _psycopg(schema: str) -> tuple[Any, dict[str, str], Callable[[list[Any]], list[StoredEvent]]]:
    """psycopg, the backend's queries composed for `schema`, and its row mapping."""
    try:
        import psycopg

        from ..storage import _postgres as pg
        from ..storage import postgres_schema

        postgres_schema(schema)  # refuses a name PostgreSQL would reject, cut short or share
    except ImportError as exc:
        raise BadInput(
            "a PostgreSQL store needs psycopg 3: pip install 'eventsourcing_fn[postgres]'"
        ) from exc
    except ValueError as exc:
        raise BadInput(f"--schema {schema!r}: {exc}") from exc
    queries = {key: pg._compose(text, schema) for key, text in pg._QUERIES.items()}
    queries["shift"] = str(pg._SHIFT)
    return psycopg, queries, pg._events


def _check_postgres_store(conn: Any, schema: str, where: str) -> None:
    from ..storage import _postgres as pg

    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, list(pg._RELATIONS)),
    ).fetchone()
    if row[0] != len(pg._RELATIONS):
        missing = "holds no eventsourcing_fn store" if row[0] == 0 else "holds an incomplete store"
        raise BadInput(f"{where} {missing} (inspection never creates one; check --schema)")


def _postgres_listings(schema: str) -> tuple[str, str, str]:
    from psycopg import sql

    events = sql.Identifier(schema, "events").as_string(None).replace("%", "%%")
    checkpoints = sql.Identifier(schema, "checkpoints").as_string(None).replace("%", "%%")
    return (
        f"SELECT stream_type, stream_id, max(version), max(recorded_at) FROM {events}",
        f"SELECT DISTINCT stream_type FROM {events}",
        f"SELECT name, position, state FROM {checkpoints}",
    )


def _postgres_reads(
    read: Callable[..., list[Any]],
    events: Callable[[list[Any]], list[StoredEvent]],
    q: dict[str, str],
    schema: str,
) -> dict[str, Any]:
    """The reading callables of the `Storage` record, on the PostgreSQL backend's own queries."""
    shift = int(q["shift"])

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        return events(read("read_stream", q["stream"], (stream_type, stream_id, after, up_to)))

    def read_snapshot(stream_type: str, stream_id: str, up_to: int | None) -> StoredSnapshot | None:
        rows = read("read_snapshot", q["snapshot"], (stream_type, stream_id, up_to))
        return StoredSnapshot(*rows[0]) if rows else None

    def read_checkpoint(name: str) -> Checkpoint | None:
        rows = read("read_checkpoint", q["checkpoint"], (name,))
        return Checkpoint(*rows[0]) if rows else None

    def read_checkpoints(names: Sequence[str]) -> dict[str, Checkpoint]:
        rows = read("read_checkpoints", q["checkpoints"], (sorted(set(names)),))
        return {row[0]: Checkpoint(*row) for row in rows}

    def get_document(projection: str, key: str) -> str | None:
        rows = read("get_document", q["document"], (projection, key))
        return str(rows[0][0]) if rows else None

    return {
        "read_stream": read_stream,
        # Gap-safe, as the backend reads it: a tail never skips an event committed late.
        "read_all": lambda after, limit: events(
            read("read_all", q["all"], (schema, after, shift, limit))
        ),
        "read_committed": lambda after, limit: events(
            read("read_committed", q["committed"], (after, limit))
        ),
        "read_snapshot": read_snapshot,
        "read_checkpoint": read_checkpoint,
        "read_checkpoints": read_checkpoints,
        "get_document": get_document,
        "get_documents": lambda projection, keys: dict(
            read("get_documents", q["get_documents"], (projection, list(keys)))
        ),
        "all_documents": lambda projection: [
            (key, data) for key, data in read("all_documents", q["documents"], (projection,))
        ],
        "last_position": lambda: int(read("last_position", q["last_position"])[0][0]),
        "count_after": lambda position: int(
            read("count_after", q["count_after"], (position,))[0][0]
        ),
    }
