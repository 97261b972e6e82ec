"""Fresh stores of each library on each backend: a new SQLite file or PostgreSQL schema per use,
closed and removed afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing_fn import Aggregate, DocumentProjection, EventStore, ProcessManager, Projection
from eventsourcing_fn.storage import Storage, memory_storage, sqlite_storage

from .config import Config
from .domain import EsTallies

try:
    import psycopg

    from eventsourcing_fn.storage import postgres_storage
except ImportError:  # without the postgres extra the PostgreSQL workloads are skipped
    psycopg = None  # type: ignore[assignment]

_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    """A name no other store of this run (or of a concurrent run) uses."""
    return f"bench_{prefix}_{os.getpid()}_{next(_names)}"


def pg_execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def drop_schema(dsn: str, schema: str) -> None:
    pg_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def our_storage(
    backend: str, cfg: Config, *, lock_streams: bool = False, name: str | None = None
) -> Iterator[Storage]:
    """A fresh storage of this project on `backend`, in the file `workdir/<name>.db` or the
    schema `<name>`; closed, its file or schema removed afterwards."""
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    name = name or unique("fn")
    if backend == "memory":
        storage = memory_storage()
    elif backend == "sqlite":
        path = cfg.workdir / f"{name}.db"
        storage = sqlite_storage(path)
        cleanup = lambda: remove_sqlite(path)  # noqa: E731
    else:
        storage = postgres_storage(cfg.dsn, schema=name, lock_streams=lock_streams)
        cleanup = lambda: drop_schema(cfg.dsn, name)  # noqa: E731
    try:
        yield storage
    finally:
        storage.close()
        cleanup()


@contextmanager
def our_store(
    backend: str,
    cfg: Config,
    aggregate: Aggregate[Any],
    *,
    lock_streams: bool = False,
    schema: str | None = None,
    others: Sequence[Aggregate[Any]] = (),
    projections: Sequence[Projection[Any] | DocumentProjection[Any]] = (),
    process_managers: Sequence[ProcessManager[Any]] = (),
) -> Iterator[EventStore]:
    """A fresh store of this project on `backend`; its file or schema is removed afterwards."""
    with our_storage(backend, cfg, lock_streams=lock_streams, name=schema) as storage:
        yield EventStore(
            storage,
            aggregates=[aggregate, *others],
            projections=projections,
            process_managers=process_managers,
        )


@contextmanager
def their_env(
    backend: str, cfg: Config, *, pool_size: int = 5, schema: str | None = None
) -> Iterator[dict[str, str]]:
    """Settings for a fresh `eventsourcing` database on `backend`, in their own env keys; the
    file or schema is removed afterwards. Their projection runner takes the same settings."""
    env = {"IS_SNAPSHOTTING_ENABLED": "n"}  # and no AGGREGATE_CACHE_MAXSIZE: no cache
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "memory":
        env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
    elif backend == "sqlite":
        path = cfg.workdir / f"{unique('es')}.db"
        env |= {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        cleanup = lambda: remove_sqlite(path)  # noqa: E731
    else:
        name = schema or unique("es")
        pg_execute(cfg.dsn, f'CREATE SCHEMA "{name}"')  # theirs expects it to exist
        info = psycopg.conninfo.conninfo_to_dict(cfg.dsn)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(info.get("dbname", "postgres")),
            "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(info.get("port", "5432")),
            "POSTGRES_USER": str(info.get("user", "postgres")),
            "POSTGRES_PASSWORD": str(info.get("password", "")),
            "POSTGRES_SCHEMA": name,
            "POSTGRES_POOL_SIZE": str(pool_size),
        }
        cleanup = lambda: drop_schema(cfg.dsn, name)  # noqa: E731
    try:
        yield env
    finally:
        cleanup()


@contextmanager
def their_app(
    backend: str, cfg: Config, *, pool_size: int = 5, schema: str | None = None
) -> Iterator[EsTallies]:
    """A fresh `eventsourcing` application on `backend`, configured by its own env settings."""
    with their_env(backend, cfg, pool_size=pool_size, schema=schema) as env:
        # Application(env=...) takes exactly the environment variables it would read from
        # os.environ; passing them here keeps them out of the process (and away from ours).
        app = EsTallies(env=env)
        try:
            yield app
        finally:
            app.close()


@contextmanager
def their_sqlite_synchronous_normal() -> Iterator[None]:
    """Theirs at our durability setting, for a fair second SQLite figure.

    Their SQLite module leaves `PRAGMA synchronous` at FULL (an fsync per commit in WAL mode);
    ours sets NORMAL. No setting of theirs changes it, so this wraps their connection factory.
    """
    from eventsourcing.sqlite import SQLiteConnectionPool

    create = SQLiteConnectionPool._create_connection

    def create_normal(pool: SQLiteConnectionPool) -> Any:
        conn = create(pool)
        conn._sqlite_conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    SQLiteConnectionPool._create_connection = create_normal  # type: ignore[method-assign]
    try:
        yield
    finally:
        SQLiteConnectionPool._create_connection = create  # type: ignore[method-assign]
