"""Shared fixtures: storages of every backend, each isolated per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventsourcing_fn.storage import Storage, memory_storage

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["memory", "sqlite", "postgres"]


def _postgres_reachable() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server to test against
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"


_PG_PROBLEM: str | bool | None = False  # False: not probed yet


def require_postgres() -> None:
    """Skip (on a laptop) or fail (under CI=true) when PostgreSQL is not reachable."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_reachable()
    if isinstance(_PG_PROBLEM, str):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)


def drop_schema(schema: str) -> None:
    """Remove a test schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(schema)


Make = Callable[..., Storage]


@pytest.fixture
def make(pg_schema: str) -> Iterator[Make]:
    """Makes PostgreSQL storages on the test's schema (or another), closed before it is dropped."""
    from eventsourcing_fn.storage import postgres_storage

    made: list[Storage] = []

    def make_storage(conninfo_or_pool: Any = POSTGRES_URL, **kw: Any) -> Storage:
        kw.setdefault("schema", pg_schema)
        storage = postgres_storage(conninfo_or_pool, **kw)
        made.append(storage)
        return storage

    yield make_storage
    for storage in made:
        storage.close()


StorageFactory = Callable[[], Storage]


@pytest.fixture(params=BACKENDS)
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageFactory]:
    """Makes storages of one backend that share one database (several stores, one storage)."""
    made: list[Storage] = []
    backend = request.param
    schema = f"test_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        require_postgres()

    def make() -> Storage:
        if backend == "memory":
            storage = made[0] if made else memory_storage()
        elif backend == "sqlite":
            from eventsourcing_fn.storage import sqlite_storage

            storage = sqlite_storage(tmp_path / "events.db")
        else:
            from eventsourcing_fn.storage import postgres_storage

            storage = postgres_storage(POSTGRES_URL, schema=schema)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()
    if backend == "postgres":
        drop_schema(schema)


@pytest.fixture
def storage(storage_factory: StorageFactory) -> Storage:
    """One storage of each backend, empty."""
    return storage_factory()


@pytest.fixture(scope="session")
def jupyter_kernel() -> str:
    """The `python3` Jupyter kernel, installed into this interpreter's prefix when none is found.

    jupyter_client starts a spec whose command is `python` with this interpreter.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel import kernelspec

        kernelspec.install(prefix=sys.prefix, user=False)
    return "python3"
